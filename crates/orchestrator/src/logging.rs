//! The tracing subscriber: `-v`/`-vv` or `ORCHESTRATOR_LOG` choose what is shown, and every line
//! goes to stderr through the progress bars (`MultiProgress::suspend`), so logs never tear them.
//!
//! Libraries only emit events; this is the one place that decides where they go.

use std::io::Write;

use indicatif::MultiProgress;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Environment variable with a full tracing filter, e.g. `warn,runner=debug`.
pub const LOG_ENV: &str = "ORCHESTRATOR_LOG";

pub fn init(verbose: u8, bars: MultiProgress) {
    let filter = match std::env::var(LOG_ENV) {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::new(spec),
        // Dependencies' chatter (every SQL statement, every HTTP frame) only at -vvv.
        _ => EnvFilter::new(match verbose {
            0 => "warn",
            1 => "info,sqlx=warn",
            2 => "debug,sqlx=warn,hyper=info,hyper_util=info,reqwest=info,rustls=info,h2=info",
            _ => "trace",
        }),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(verbose >= 2)
        .with_writer(BarWriter(bars))
        .try_init();
}

/// Makes one [`LineWriter`] per log event.
#[derive(Clone)]
struct BarWriter(MultiProgress);

impl<'a> MakeWriter<'a> for BarWriter {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            bars: self.0.clone(),
            buf: Vec::with_capacity(256),
        }
    }
}

/// Collects one formatted event, then writes it in one piece with the bars lifted.
struct LineWriter {
    bars: MultiProgress,
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let buf = std::mem::take(&mut self.buf);
        self.bars.suspend(|| {
            let _ = std::io::stderr().lock().write_all(&buf);
        });
    }
}
