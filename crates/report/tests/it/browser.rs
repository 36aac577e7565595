//! The HTML report in a real headless Chromium: it renders without a script error, a console
//! error or a blocked request, and a screenshot is taken.
//!
//! Runs when `ORCHESTRATOR_BROWSER_TESTS=1` (CI installs Debian's `chromium`); otherwise it says
//! so and passes. `ORCHESTRATOR_CHROMIUM` names another binary; `ORCHESTRATOR_REPORT_SCREENSHOT`
//! copies the screenshot to a path for a person to look at.
//!
//! How errors are caught: the page itself runs no script, so the test inserts a probe script
//! first in `<head>` (and relaxes the Content-Security-Policy just enough to let inline scripts
//! run, keeping `default-src 'none'`). The probe records uncaught errors, failed resource loads,
//! CSP violations (any attempted request) and `console.error` calls in a `data-probe-errors`
//! attribute, and sets `data-probe="ran"` once the document has loaded; `--dump-dom` prints the
//! DOM after load, so the test reads both. A control page with a deliberate error proves the probe
//! catches what it should. Chromium's stderr is also searched for `Uncaught` and console errors.

use std::path::Path;
use std::process::Command;

use domain::Pricing;
use report::ArmPricing;

use report::testing::{ArmSpec, assumptions, decision, inputs, right, run};

const PROBE: &str = r#"<script>
(function () {
  var errs = [];
  function mark(m) {
    errs.push(String(m));
    document.documentElement.setAttribute("data-probe-errors", errs.join(" | "));
  }
  window.addEventListener("error", function (e) {
    var t = e.target;
    mark(e.message ? "error: " + e.message : "failed to load: " + (t && (t.src || t.href) || t));
  }, true);
  window.addEventListener("unhandledrejection", function (e) { mark("rejection: " + e.reason); });
  document.addEventListener("securitypolicyviolation", function (e) {
    mark("csp: " + e.violatedDirective + " " + e.blockedURI);
  });
  var original = console.error;
  console.error = function () {
    mark("console.error: " + Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    document.documentElement.setAttribute("data-probe", "ran");
  });
})();
</script>"#;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

fn enabled() -> bool {
    if std::env::var("ORCHESTRATOR_BROWSER_TESTS").as_deref() == Ok("1") {
        return true;
    }
    eprintln!(
        "note: browser test skipped; set ORCHESTRATOR_BROWSER_TESTS=1 to run it in headless Chromium"
    );
    false
}

fn chromium() -> String {
    std::env::var("ORCHESTRATOR_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned())
}

/// The page with the probe inserted and inline scripts allowed.
fn probed(html: &str) -> String {
    assert!(
        html.contains(CSP),
        "the page lost its Content-Security-Policy"
    );
    let relaxed = html.replacen(CSP, &format!("{CSP}; script-src 'unsafe-inline'"), 1);
    relaxed.replacen("<head>", &format!("<head>{PROBE}"), 1)
}

/// Runs headless Chromium on `page` with `extra` arguments; returns (stdout, stderr).
fn chromium_run(profile: &Path, page: &Path, extra: &[String]) -> (String, String) {
    let mut cmd = Command::new("timeout");
    cmd.arg("120").arg(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ]);
    cmd.arg(format!("--user-data-dir={}", profile.display()));
    cmd.args(extra);
    cmd.arg(format!("file://{}", page.display()));
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "chromium failed ({}):\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

/// Console lines Chromium logs to stderr. With `--enable-logging=stderr` it writes every console
/// message as `[…:INFO:CONSOLE:LINE] "message", source: …` whatever its level (checked with
/// Chromium 148), so an error cannot be told from a log line there. The report page and the
/// probe log nothing, so any console line at all is a failure.
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect()
}

/// The value of the probe's `data-probe-errors` attribute, if it set one. (The probe's own
/// source names the attribute too, so look for the attribute syntax, not the name.)
fn probe_errors(dom: &str) -> Option<&str> {
    let start = dom.find("data-probe-errors=\"")? + "data-probe-errors=\"".len();
    dom[start..].split('"').next()
}

/// Loads `html` and returns the DOM after load and Chromium's stderr.
fn dump_dom(dir: &Path, name: &str, html: &str) -> (String, String) {
    let page = dir.join(name);
    std::fs::write(&page, probed(html)).unwrap();
    chromium_run(
        &dir.join(format!("profile-{name}")),
        &page,
        &["--dump-dom".to_owned()],
    )
}

#[test]
fn report_renders_in_chromium_without_errors() {
    if !enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    // Control: a page with a deliberate error and a blocked request must trip the probe.
    let control = format!(
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\"></head>\
         <body><img src=\"https://example.invalid/x.png\"><p>control</p><script>notDefined();</script></body></html>"
    );
    let (dom, stderr) = dump_dom(dir.path(), "control.html", &control);
    assert!(
        console_lines(&stderr)
            .iter()
            .any(|l| l.contains("Uncaught ReferenceError")),
        "stderr shows no console error for the control page:\n{stderr}"
    );
    assert!(
        dom.contains("data-probe=\"ran\""),
        "probe did not run on the control page:\n{dom}"
    );
    let caught = probe_errors(&dom).unwrap_or_default();
    assert!(
        caught.contains("notDefined"),
        "probe missed the script error:\n{dom}"
    );
    assert!(
        caught.contains("csp: "),
        "probe missed the blocked request:\n{dom}"
    );

    let pages = [
        ("stay", stay_page()),
        ("escalate", escalate_page()),
        ("review", review_page()),
        ("curves", curves_page()),
    ];
    for (name, html) in pages {
        check_page(dir.path(), name, &html);
    }
}

/// A stay verdict: two hosted prompt arms and a fine-tune, a hostile answer and dataset text.
fn stay_page() -> String {
    let mut ft = ArmSpec::finetune("smollm2-lora", right(60, 0, 57));
    ft.answers = vec![(0, "<script>alert(1)</script>\"onload=alert(2)")];
    let mut results = run(
        60,
        vec![
            ArmSpec::prompt("zero-shot@gpt-4o-mini", right(60, 0, 50)),
            ArmSpec::prompt("few-shot@gpt-4o-mini", right(60, 3, 58)),
            ft,
        ],
    );
    results.items[1].input = "<img src=x onerror=alert(3)>".to_owned();
    let r = report::decide(
        &results,
        &assumptions(20_000.0),
        &decision(0.9),
        &inputs(&results),
    );
    report::render_html(&r, &results)
}

/// An escalate verdict with costs decades apart (a log axis): a pricey hosted arm that misses,
/// a nearly free local prompt arm that misses badly, and a fine-tune that passes.
fn escalate_page() -> String {
    let mut local = ArmSpec::prompt("few-shot@smollm2", right(60, 0, 36));
    local.compute_seconds = 0.5;
    local.latency_ms = 500.0;
    let results = run(
        60,
        vec![
            ArmSpec::prompt("zero-shot@gpt-4o", right(60, 0, 51)),
            local,
            ArmSpec::finetune("smollm2-lora", right(60, 2, 59)),
        ],
    );
    let inputs = inputs(&results)
        .with_arm(
            "zero-shot@gpt-4o",
            ArmPricing::Hosted {
                pricing: Some(Pricing {
                    input_per_mtok: 2.5,
                    output_per_mtok: 10.0,
                }),
                batch_api: false,
            },
        )
        .with_arm(
            "few-shot@smollm2",
            ArmPricing::Compute {
                cost_per_hour: 0.05,
            },
        );
    let r = report::decide(&results, &assumptions(20_000.0), &decision(0.9), &inputs);
    assert_eq!(r.verdict, report::Verdict::Escalate);
    report::render_html(&r, &results)
}

/// Review routing (`review:`): arms with confidences, the risk–coverage chart and review table.
fn review_page() -> String {
    let n = 200;
    let arm = |name: &'static str, right: usize, finetune: bool| {
        let correct: Vec<bool> = (0..n).map(|i| i < right).collect();
        // Confidence falls with the item index, so the curve has a body.
        let conf = (0..n)
            .map(|i| 0.999 - i as f64 / (2.0 * n as f64))
            .collect();
        let spec = if finetune {
            ArmSpec::finetune(name, correct)
        } else {
            ArmSpec::prompt(name, correct)
        };
        spec.with_confidence(conf)
    };
    let mut results = run(
        n,
        vec![
            arm("few-shot@gpt-4o-mini", 150, false),
            arm("smollm2-lora", 185, true),
        ],
    );
    let settings = results.run.settings.as_mut().unwrap();
    settings.costs.review.cost_per_review_usd = Some(0.4);
    settings.review = Some(domain::ReviewSpec {
        target_accuracy: 0.9,
        delta: 0.1,
        calibration: 0.5,
        correction: domain::ReviewCorrection::FixedSequence,
        seed: 7,
    });
    let s = results.run.settings.clone().unwrap();
    let r = report::decide(&results, &s.costs, &s.decision, &inputs(&results));
    assert!(r.arms.iter().all(|a| a.review.is_some()));
    let html = report::render_html(&r, &results);
    assert!(html.contains("Accuracy against coverage"));
    html
}

/// Learning and noise curves: a fine-tune at four sizes and two noise levels.
fn curves_page() -> String {
    let (results, r) = crate::curves::sweep_with_run();
    let html = report::render_html(&r, &results);
    assert!(html.contains("Quality against training examples"));
    assert!(html.contains("Quality against label noise"));
    html
}

/// Loads the page, checks that nothing went wrong, and takes a screenshot.
fn check_page(dir: &Path, name: &str, html: &str) {
    let (dom, stderr) = dump_dom(dir, &format!("{name}.html"), html);
    assert!(
        dom.contains("data-probe=\"ran\""),
        "probe did not run on {name}:\n{dom}"
    );
    assert_eq!(probe_errors(&dom), None, "the {name} page reported errors");
    assert!(
        console_lines(&stderr).is_empty(),
        "console output on {name}:\n{stderr}"
    );
    assert!(
        !dom.contains("<script>alert"),
        "an answer became markup on {name}"
    );

    // The screenshot, of the page as loaded above (the probe changes nothing without errors).
    let page = dir.join(format!("{name}.html"));
    let shot = dir.join(format!("{name}.png"));
    let (_, stderr) = chromium_run(
        &dir.join(format!("profile-shot-{name}")),
        &page,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000".to_owned(),
            "--hide-scrollbars".to_owned(),
        ],
    );
    assert!(
        console_lines(&stderr).is_empty(),
        "console output on {name}:\n{stderr}"
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}):\n{stderr}"));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    // IHDR: width and height, big-endian, at bytes 16..24.
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 2000));
    // A blank 1280×2000 page compresses to a few kilobytes; charts and tables do not.
    assert!(
        png.len() > 60_000,
        "{name} screenshot looks empty: {} bytes",
        png.len()
    );
    if let Ok(dest) = std::env::var("ORCHESTRATOR_REPORT_SCREENSHOT") {
        // The first page under the given name, the others beside it with theirs.
        let dest = Path::new(&dest);
        let dest = if name == "stay" {
            dest.to_owned()
        } else {
            dest.with_file_name(format!("report-{name}.png"))
        };
        std::fs::copy(&shot, &dest).unwrap();
        std::fs::write(dest.with_extension("html"), html).unwrap();
    }
}
