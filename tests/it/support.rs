//! Test scaffolding: locating the binary, a temp workspace with a spec, a dataset
//! and a database, the in-process test server, and running the binary with a clean environment.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use testserver::{ServerConfig, TestServer};

/// The API key tests hand the binary; it must never show up anywhere the binary writes.
pub const SECRET: &str = "sk-test-SECRET";

/// The `orchestrator` binary of this build: Cargo builds it before this test target, which
/// belongs to its package. `$ORCHESTRATOR_BIN` overrides (to test an installed binary).
pub fn orchestrator_bin() -> PathBuf {
    std::env::var_os("ORCHESTRATOR_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_orchestrator")),
        PathBuf::from,
    )
}

/// What one invocation of the binary left.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    fn from(status: ExitStatus, stdout: Vec<u8>, stderr: Vec<u8>) -> Self {
        Self {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Panics with both streams when the exit code is not `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A temp dir with a database path, and (usually) a test server.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub server: Option<TestServer>,
    pub api_key: Option<String>,
}

impl Env {
    /// A workspace with a server configured by `config`.
    pub async fn with_server(config: ServerConfig) -> Env {
        let server = testserver::spawn(config).await.expect("test server starts");
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
            server: Some(server),
            api_key: Some(SECRET.to_string()),
        }
    }

    /// A workspace without a server (validation, dry runs).
    pub fn without_server() -> Env {
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
            server: None,
            api_key: Some(SECRET.to_string()),
        }
    }

    pub fn server(&self) -> &TestServer {
        self.server.as_ref().expect("this env has a server")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn db(&self) -> PathBuf {
        self.path("orchestrator.db")
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.path(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("creating a test folder");
        }
        std::fs::write(&path, content).expect("writing a test file");
        path
    }

    /// `data.jsonl` with `n` rows `{id, text: "<qI> ...", label}`; the label is `yes` except for
    /// every fifth row.
    pub fn write_dataset(&self, n: usize) {
        let mut s = String::new();
        for i in 0..n {
            let label = if i % 5 == 4 { "no" } else { "yes" };
            s.push_str(
                &serde_json::json!({
                    "id": format!("item-{i}"),
                    "text": format!("<q{i}> is this fine?"),
                    "label": label,
                })
                .to_string(),
            );
            s.push('\n');
        }
        self.write("data.jsonl", &s);
    }

    /// The standard spec (see [`spec`]) against this env's server.
    pub fn write_spec(&self, extra: &SpecOptions) -> PathBuf {
        let url = self
            .server
            .as_ref()
            .map_or_else(|| "http://127.0.0.1:9/v1".to_string(), TestServer::base_url);
        self.write("spec.yaml", &spec(&url, extra))
    }

    /// The binary with a clean environment: only this env's database, key and cache.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(orchestrator_bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .env_remove("ORCHESTRATOR_LOG")
            .env("ORCHESTRATOR_DB", self.db())
            .env("ORCHESTRATOR_HOME", self.path("home"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(key) = &self.api_key {
            cmd.env("OPENAI_API_KEY", key);
        }
        cmd
    }

    /// Runs the binary to the end.
    pub async fn run(&self, args: &[&str]) -> Output {
        let out = self
            .command(args)
            .output()
            .await
            .expect("the orchestrator binary runs");
        Output::from(out.status, out.stdout, out.stderr)
    }

    /// `leaderboard --format json` of a run (the latest when `run` is None), parsed.
    pub async fn leaderboard(&self, run: Option<i64>) -> Vec<serde_json::Value> {
        let run_s = run.map(|r| r.to_string());
        let mut args = vec!["leaderboard", "--format", "json"];
        if let Some(r) = &run_s {
            args.extend(["--run", r.as_str()]);
        }
        let out = self.run(&args).await;
        out.expect_code(0);
        let value: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
        value
            .as_array()
            .cloned()
            .expect("leaderboard JSON is an array")
    }

    /// The leaderboard row of `arm`.
    pub async fn row(&self, run: Option<i64>, arm: &str) -> serde_json::Value {
        self.leaderboard(run)
            .await
            .into_iter()
            .find(|r| r["arm"] == arm)
            .unwrap_or_else(|| panic!("no leaderboard row for {arm}"))
    }
}

/// Knobs of the standard spec.
#[derive(Debug, Clone)]
pub struct SpecOptions {
    pub max_concurrency: usize,
    pub max_retries: u32,
    pub timeout_s: f64,
    /// Dollars per million tokens, input and output.
    pub price: (f64, f64),
    pub budget: Option<f64>,
    /// Both prompts (two arms) or only `plain`.
    pub two_prompts: bool,
    /// YAML appended at the top level (e.g. a `costs:` section).
    pub extra: String,
}

impl Default for SpecOptions {
    fn default() -> Self {
        Self {
            max_concurrency: 4,
            max_retries: 4,
            timeout_s: 5.0,
            price: (1.0, 2.0),
            budget: None,
            two_prompts: true,
            extra: String::new(),
        }
    }
}

/// A spec with one OpenAI-compatible provider (`fake`) and one or two prompts over `data.jsonl`.
/// Arms: `plain@fake` (and `polite@fake`).
pub fn spec(base_url: &str, o: &SpecOptions) -> String {
    let budget = o.budget.map_or_else(String::new, |b| {
        format!("budget: {{ max_cost_usd: {b} }}\n")
    });
    let second = if o.two_prompts {
        "  - id: polite\n    system: Answer with one word.\n    template: \"Please answer: {{text}}\"\n"
    } else {
        ""
    };
    format!(
        r#"name: e2e
description: end-to-end test experiment
dataset:
  path: data.jsonl
  input: text
  target: label
providers:
  - id: fake
    type: openai
    model: gpt-test
    base_url: {base_url}
    api_key_env: OPENAI_API_KEY
    max_concurrency: {conc}
    max_retries: {retries}
    timeout_s: {timeout}
    pricing: {{ input_per_mtok: {pin}, output_per_mtok: {pout} }}
prompts:
  - id: plain
    template: "Q: {{{{text}}}}"
{second}generation: {{ max_tokens: 8, temperature: 0 }}
scorers:
  - type: equals
  - type: contains
{budget}{extra}"#,
        extra = o.extra,
        conc = o.max_concurrency,
        retries = o.max_retries,
        timeout = o.timeout_s,
        pin = o.price.0,
        pout = o.price.1,
    )
}

/// A server answering `yes` to everything, after `latency`.
pub fn yes_server(latency: Duration) -> ServerConfig {
    ServerConfig {
        latency,
        default_answers: vec!["yes".into()],
        ..ServerConfig::default()
    }
}

/// The run id printed by `run` ("run N: ...").
pub fn run_id(stdout: &str) -> i64 {
    stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("run ")?
                .split(':')
                .next()?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no run id in {stdout:?}"))
}

/// How many prompts the server was asked more than once.
pub fn repeated_prompts(server: &TestServer) -> usize {
    let mut seen = std::collections::HashMap::<String, u32>::new();
    for entry in server.requests_log() {
        *seen.entry(entry.last_user_message).or_default() += 1;
    }
    seen.values().filter(|&&n| n > 1).count()
}
