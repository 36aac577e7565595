//! `openai-testserver`: the test server as a process, for benchmarks and manual runs. It prints
//! its base URL as the first line on stdout and serves until it is killed or gets Ctrl-C.
//!
//! It exposes the common knobs only (port, latency, answers, rules, a required key, a periodic
//! fault, structured outputs off); tests that need full fault plans use the library in-process.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use testserver::{Fault, FaultPlan, ServerConfig};

/// An OpenAI-compatible chat-completions server on 127.0.0.1 with deterministic answers.
#[derive(Parser, Debug)]
#[command(name = "openai-testserver", version)]
struct Args {
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Milliseconds every request waits before its answer.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Comma-separated answers; one is chosen by a stable hash of the last user message.
    #[arg(long, value_delimiter = ',')]
    answers: Vec<String>,
    /// `KEY=ANSWER`: answer ANSWER when the last user message contains KEY (repeatable).
    #[arg(long = "rule", value_parser = parse_rule)]
    rules: Vec<(String, String)>,
    /// Reject requests without `Authorization: Bearer KEY` with 401.
    #[arg(long)]
    require_api_key: Option<String>,
    /// Answer every K-th request with a 500 (0: never).
    #[arg(long, default_value_t = 0)]
    error_every: u64,
    /// `MARKER=KIND`: every request whose prompt contains MARKER gets fault KIND (repeatable):
    /// rate-limited[:SECS], server-error, stall:MS, malformed, truncated, bad-request,
    /// echo-authorization[:STATUS], null-content, content-filter, echo-key, escapes,
    /// huge-usage[:TOKENS].
    #[arg(long = "fault", value_parser = parse_fault)]
    faults: Vec<(String, Fault)>,
    /// Refuse `response_format` (structured outputs) with a 400, as servers without them do.
    #[arg(long)]
    no_structured_outputs: bool,
}

fn parse_fault(s: &str) -> Result<(String, Fault), String> {
    let (marker, kind) = s
        .split_once('=')
        .ok_or_else(|| format!("expected MARKER=KIND, got {s:?}"))?;
    Ok((marker.to_owned(), Fault::parse(kind)?))
}

fn parse_rule(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=ANSWER, got {s:?}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut faults = FaultPlan::none();
    for (marker, fault) in args.faults {
        faults = faults.always(marker, fault);
    }
    if args.error_every > 0 {
        faults = faults.every_kth(args.error_every, Fault::ServerError);
    }
    let config = ServerConfig {
        latency: Duration::from_millis(args.latency_ms),
        rules: args.rules,
        default_answers: args.answers,
        faults,
        require_api_key: args.require_api_key,
        structured_outputs: !args.no_structured_outputs,
        ..ServerConfig::default()
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let server = match testserver::spawn_on(addr, config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("openai-testserver: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", server.base_url());
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("openai-testserver: waiting for Ctrl-C failed: {e}");
    }
    eprintln!(
        "openai-testserver: served {} requests (at most {} at once)",
        server.requests(),
        server.max_in_flight()
    );
    server.shutdown().await;
    ExitCode::SUCCESS
}
