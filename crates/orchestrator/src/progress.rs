//! Draws a run's [`runner::Event`]s: one progress bar per arm (rate, ETA, running cost, errors),
//! one per fine-tune's training steps, and notes above them. When stderr is not a terminal the
//! bars stay hidden and the same facts come out as a few plain lines instead.
//!
//! It only draws. It decides nothing about the run and keeps no state beyond the bars.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressState, ProgressStyle};
use runner::Event;
use tokio::sync::mpsc;

/// Failures printed one by one before they are only counted.
const FAILURES_SHOWN: u64 = 10;

pub struct Ui {
    bars: MultiProgress,
    arms: HashMap<String, ProgressBar>,
    training: HashMap<String, ProgressBar>,
    download: Option<ProgressBar>,
    failures: u64,
}

impl Ui {
    pub fn new(bars: MultiProgress) -> Self {
        Self {
            bars,
            arms: HashMap::new(),
            training: HashMap::new(),
            download: None,
            failures: 0,
        }
    }

    /// Draws events until the runner drops its sender.
    pub async fn drive(mut self, mut rx: mpsc::Receiver<Event>) {
        while let Some(event) = rx.recv().await {
            self.handle(event);
        }
        self.finish();
    }

    /// A line above the bars (or plainly on stderr when they are hidden).
    pub fn line(bars: &MultiProgress, text: &str) {
        bars.suspend(|| {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        });
    }

    fn say(&self, text: &str) {
        Self::line(&self.bars, text);
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::RunStarted {
                run_id,
                resumed,
                arms,
            } => {
                let todo: u64 = arms.iter().map(|a| a.total - a.done).sum();
                let verb = if resumed { "resuming" } else { "starting" };
                self.say(&format!(
                    "{verb} run {run_id}: {} arm{}, {todo} answer{} to get",
                    arms.len(),
                    plural(arms.len() as u64),
                    plural(todo)
                ));
                let width = arms.iter().map(|a| a.arm.len()).max().unwrap_or(8).min(40);
                for arm in arms {
                    let bar = self.bars.add(
                        ProgressBar::new(arm.total)
                            .with_position(arm.done)
                            .with_style(arm_style(width, arm.done))
                            .with_prefix(arm.arm.clone())
                            .with_message("$0.0000"),
                    );
                    // Draw it now: an arm whose answers come late (a fine-tune) would stay
                    // invisible until its first event.
                    bar.tick();
                    self.arms.insert(arm.arm, bar);
                }
            }
            Event::ArmProgress {
                arm,
                done,
                total,
                cost_usd,
                errors,
            } => {
                if let Some(bar) = self.arms.get(&arm) {
                    bar.set_length(total);
                    bar.set_position(done + errors);
                    let message = if errors > 0 {
                        format!("${cost_usd:.4} · {errors} failed")
                    } else {
                        format!("${cost_usd:.4}")
                    };
                    bar.set_message(message);
                }
            }
            Event::CallFailed { arm, item, error } => {
                self.failures += 1;
                if self.failures <= FAILURES_SHOWN {
                    // Ids come from the dataset and errors from servers: shown, never obeyed.
                    self.say(&format!(
                        "failed: {} item {}: {}",
                        line(&arm),
                        line(&item),
                        line(&error)
                    ));
                } else if self.failures == FAILURES_SHOWN + 1 {
                    self.say(
                        "(further failures are counted, not shown; see `orchestrator leaderboard`)",
                    );
                }
            }
            Event::Note(text) => self.say(&format!("note: {}", line(&text))),
            Event::ModelDownload { model, done, total } => {
                let bar = self.download.get_or_insert_with(|| {
                    let bar = self.bars.add(ProgressBar::no_length());
                    bar.set_style(download_style());
                    bar.set_prefix(model.clone());
                    bar
                });
                if let Some(total) = total {
                    bar.set_length(total);
                }
                bar.set_position(done);
                if total.is_some_and(|t| done >= t) {
                    bar.finish_and_clear();
                    self.download = None;
                }
            }
            Event::TrainProgress {
                arm,
                step,
                total_steps,
                loss,
                tokens_per_second,
                eta,
            } => {
                let bar = self.training.entry(arm.clone()).or_insert_with(|| {
                    self.bars.add(
                        ProgressBar::new(total_steps)
                            .with_style(train_style())
                            .with_prefix(format!("{arm} (training)")),
                    )
                });
                bar.set_length(total_steps);
                bar.set_position(step);
                let eta = eta.map_or_else(String::new, |d| format!(" · eta {}", clock(d)));
                bar.set_message(format!(
                    "loss {loss:.4} · {tokens_per_second:.0} tok/s{eta}"
                ));
                if step >= total_steps {
                    bar.abandon();
                }
            }
            Event::RunFinished { .. } => {}
        }
    }

    fn finish(&mut self) {
        // `abandon` keeps each bar where it stopped (an interrupted arm is not full).
        for bar in self.arms.values().chain(self.training.values()) {
            bar.abandon();
        }
        if let Some(bar) = self.download.take() {
            bar.finish_and_clear();
        }
    }
}

/// `start` is where a resumed arm begins: its rate counts only this invocation's answers.
fn arm_style(width: usize, start: u64) -> ProgressStyle {
    let template = format!(
        "{{prefix:<{width}.bold}} [{{bar:28.cyan/blue}}] {{pos:>6}}/{{len:<6}} {{rate:>9}} eta {{left:<6}} {{msg}}"
    );
    ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "rate",
            move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let seconds = state.elapsed().as_secs_f64();
                let rate = if seconds > 0.0 {
                    state.pos().saturating_sub(start) as f64 / seconds
                } else {
                    0.0
                };
                let _ = write!(w, "{rate:.1}/s");
            },
        )
        .with_key(
            "left",
            move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let done = state.pos().saturating_sub(start) as f64;
                let left = state.len().unwrap_or(0).saturating_sub(state.pos()) as f64;
                let seconds = state.elapsed().as_secs_f64();
                if done > 0.0 && left > 0.0 {
                    let eta =
                        Duration::try_from_secs_f64(left * seconds / done).unwrap_or_default();
                    let _ = write!(w, "{}", clock(eta));
                } else if left == 0.0 {
                    let _ = write!(w, "done");
                } else {
                    let _ = write!(w, "-");
                }
            },
        )
        .progress_chars("=> ")
}

fn train_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:.bold} [{bar:28.magenta/blue}] step {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn download_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "fetching {prefix} [{bar:28}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// Text from outside (servers, datasets, workers) as one terminal line.
fn line(text: &str) -> std::borrow::Cow<'_, str> {
    report::escape(text, report::Sink::Line)
}

pub fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
