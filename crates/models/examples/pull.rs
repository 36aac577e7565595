//! `cargo run -p models --example pull -- NAME`: fetches a model into the cache the way
//! `orchestrator models pull NAME` does, printing progress to stderr. A manual check of the real
//! download path (the tests use a loopback index); not a user-facing tool.

#![allow(clippy::print_stderr)]

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "smollm2-135m-instruct".to_string());
    let mut last = 0u64;
    let path = models::pull(&name, |done, total| {
        if done == 0 || done - last >= 8 << 20 || Some(done) == total {
            last = done;
            eprintln!("{done} / {total:?} bytes");
        }
    })
    .await?;
    eprintln!("{}", path.display());
    Ok(())
}
