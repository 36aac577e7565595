//! The documented exit codes, and the one place where an error becomes text on stderr and a code.
//!
//! Spec errors print as their diagnostics (`FILE:LINE:COL: message`, one per line) so editors and
//! CI annotate them; every other error prints once as `error: ` and its cause chain.

use std::process::ExitCode;

use crate::output::errln;

/// Exit codes, as the README's table documents them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// A bad spec, dataset, flag or argument.
    BadInput = 1,
    /// A bug or an environment problem (the database could not be written, ...).
    Internal = 2,
    /// The run finished, but some items failed for good.
    Failures = 3,
    /// `report --fail-under`: the recommended arm misses the quality bar (or there is none).
    BelowTarget = 4,
    /// `report --fail-under` on a run that is not finished: no verdict to hold a bar to yet.
    NotFinished = 5,
    /// Ctrl-C.
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// An error caused by what the user asked for, as opposed to a failure of the program.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Builds a bad-input error (exit code 1) from a message.
pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(message.into()))
}

/// Prints the error once and says which code it means.
pub fn report_error(err: &anyhow::Error) -> Exit {
    if let Some(spec) = err
        .chain()
        .find_map(|c| c.downcast_ref::<experiment::SpecError>())
    {
        for d in &spec.diagnostics {
            errln!("{}", safe(&d.to_string()));
        }
        let n = spec.diagnostics.len();
        errln!(
            "error: the experiment has {n} problem{}",
            if n == 1 { "" } else { "s" }
        );
        return Exit::BadInput;
    }
    errln!("error: {}", safe(&format!("{err:#}")));
    if is_bad_input(err) {
        Exit::BadInput
    } else {
        Exit::Internal
    }
}

/// Messages quote datasets and servers: their control characters are shown, not obeyed.
fn safe(message: &str) -> std::borrow::Cow<'_, str> {
    report::escape(message, report::Sink::Text)
}

fn is_bad_input(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.is::<BadInput>()
            || c.downcast_ref::<store::Error>()
                .is_some_and(store::Error::is_user_fixable)
            || c.downcast_ref::<runner::Error>()
                .is_some_and(runner::Error::is_bad_input)
    })
}
