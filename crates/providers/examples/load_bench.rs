//! Load benchmark for `providers::Client`: N chat calls with C in flight against the test server
//! (started in-process with a fixed latency) or against any OpenAI-compatible `--base-url`.
//! It prints wall time, the ideal wall time (`ceil(N / C) × latency`), their ratio, CPU time per
//! call and peak RSS, so client overhead shows up as a ratio above 1 and as CPU per call.
//!
//! ```text
//! cargo run --release -p providers --example load_bench -- --n 10000 --concurrency 256 --latency-ms 50
//! cargo run --release -p providers --example load_bench -- --base-url http://127.0.0.1:8080/v1 --latency-ms 50
//! ```
//!
//! In-process, CPU time and RSS include the server; with `--base-url` they are the client's
//! alone. Not a criterion benchmark: one run, one set of numbers, meant to be read and extended
//! (the runner will add store writes per call here).

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use domain::{GenerationParams, Message, Pricing};
use providers::{Client, Endpoint};
use testserver::ServerConfig;

struct Args {
    n: usize,
    concurrency: usize,
    latency: Duration,
    base_url: Option<String>,
    model: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        n: 10_000,
        concurrency: 256,
        latency: Duration::from_millis(50),
        base_url: None,
        model: "bench-model".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--n" => args.n = number(value()?)? as usize,
            "--concurrency" | "-c" => args.concurrency = (number(value()?)? as usize).max(1),
            "--latency-ms" => args.latency = Duration::from_millis(number(value()?)?),
            "--base-url" => args.base_url = Some(value()?),
            "--model" => args.model = value()?,
            "--help" | "-h" => {
                return Err(
                    "usage: load_bench [--n N] [--concurrency C] [--latency-ms L] \
                            [--base-url URL] [--model M]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    Ok(args)
}

/// User + system CPU time of this process so far, from `/proc/self/stat` (all threads).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the file, 12th and 13th after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(
        ticks as f64 / clock_ticks_per_second(),
    ))
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Peak resident set size in bytes (`VmHWM` in `/proc/self/status`).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let server = match &args.base_url {
        Some(_) => None,
        None => Some(
            testserver::spawn(ServerConfig {
                latency: args.latency,
                default_answers: vec!["positive".into(), "negative".into()],
                ..ServerConfig::default()
            })
            .await?,
        ),
    };
    let base_url = match (&args.base_url, &server) {
        (Some(url), _) => url.clone(),
        (None, Some(s)) => s.base_url(),
        (None, None) => return Err("no server".into()),
    };

    let client = Client::new(Endpoint {
        id: "bench".into(),
        base_url: base_url.clone(),
        model: args.model.clone(),
        api_key: None,
        max_concurrency: args.concurrency,
        requests_per_minute: None,
        timeout: Duration::from_secs(30),
        max_retries: 3,
        structured_outputs: None,
        logprobs: None,
        pricing: Pricing {
            input_per_mtok: 0.15,
            output_per_mtok: 0.60,
        },
    })?;
    let params = Arc::new(GenerationParams {
        max_tokens: 8,
        ..GenerationParams::default()
    });

    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let attempts = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_time();
    let start = Instant::now();
    // C workers pull item numbers from a shared counter: C calls in flight, no N pending tasks.
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (client, params, next) = (client.clone(), params.clone(), next.clone());
        let (failures, attempts, n) = (failures.clone(), attempts.clone(), args.n);
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let messages = [
                    Message::system("Label the review as positive or negative."),
                    Message::user(format!("Review {i}: a film I will remember.")),
                ];
                let outcome = client.chat(&messages, &params).await;
                attempts.fetch_add(u64::from(outcome.attempts), Ordering::Relaxed);
                if outcome.result.is_err() {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while let Some(joined) = workers.join_next().await {
        joined?;
    }
    let wall = start.elapsed();
    let cpu = match (cpu_before, cpu_time()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };

    let rounds = args.n.div_ceil(args.concurrency) as u32;
    let ideal = args.latency * rounds;
    println!("target        {base_url}");
    println!(
        "calls         {} ({} failed, {} attempts), {} in flight",
        args.n,
        failures.load(Ordering::Relaxed),
        attempts.load(Ordering::Relaxed),
        args.concurrency
    );
    println!("wall          {:.3} s", wall.as_secs_f64());
    println!(
        "ideal         {:.3} s  (ceil({} / {}) x {} ms)",
        ideal.as_secs_f64(),
        args.n,
        args.concurrency,
        args.latency.as_millis()
    );
    if !ideal.is_zero() {
        println!(
            "ratio         {:.3}",
            wall.as_secs_f64() / ideal.as_secs_f64()
        );
    }
    println!(
        "throughput    {:.0} calls/s",
        args.n as f64 / wall.as_secs_f64().max(1e-9)
    );
    if let Some(cpu) = cpu {
        let scope = if server.is_some() {
            "client + in-process server"
        } else {
            "client"
        };
        println!(
            "cpu           {:.3} s total, {:.1} us/call ({scope})",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / args.n.max(1) as f64
        );
    }
    if let Some(rss) = peak_rss() {
        println!("peak rss      {:.1} MiB", rss as f64 / (1024.0 * 1024.0));
    }
    if let Some(server) = server {
        println!(
            "server        {} requests, at most {} in flight",
            server.requests(),
            server.max_in_flight()
        );
        server.shutdown().await;
    }
    Ok(())
}
