//! Writing to stdout, stderr and report files. Commands print through [`outln!`] and [`out!`], which return
//! the write's error instead of panicking as `println!` does: a closed pipe
//! (`orchestrator runs | head -1`) then ends the command quietly with 0 (`main` checks
//! [`is_broken_pipe`]), as `cat` or `grep` would. Stderr writes ignore a closed stderr: there is
//! nowhere left to say anything. [`check_report_path`] keeps `report --html` from replacing
//! the database or a file that is not an earlier report.

use std::io::{Read, Write};
use std::path::Path;

use crate::exit::bad_input;

/// Writes formatted text to stdout and flushes it, so a closed pipe is seen at once.
pub fn stdout(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.flush()
}

/// Writes a line to stderr; a closed stderr is ignored.
pub fn stderr_line(args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{args}");
}

/// Whether the error is a write to a reader that went away.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Refuses to write a report to `path` when it is the database `db` (or its journal), or an
/// existing file that is not a page `report --html` wrote (unless `force`). A path that does not
/// exist yet is fine. `force` never lets a report replace the database: every run would be lost.
pub fn check_report_path(path: &Path, db: &Path, force: bool) -> anyhow::Result<()> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let journals = ["", "-wal", "-shm", "-journal"].map(|suffix| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        name
    });
    if journals.iter().any(|j| same_file(path, Path::new(j))) {
        return Err(bad_input(format!(
            "{} is the database: write the report to another file",
            path.display()
        )));
    }
    if !meta.is_file() {
        return Err(bad_input(format!(
            "{} exists and is not a regular file",
            path.display()
        )));
    }
    if force || starts_as_report(path) {
        return Ok(());
    }
    Err(bad_input(format!(
        "{} exists and is not an earlier report; pass --force to replace it",
        path.display()
    )))
}

/// Whether two paths name one file (through symbolic and hard links alike).
#[cfg(unix)]
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Whether the file opens as a page of ours (the marker sits in the first kilobyte).
fn starts_as_report(path: &Path) -> bool {
    let mut head = Vec::with_capacity(1024);
    std::fs::File::open(path)
        .and_then(|f| f.take(1024).read_to_end(&mut head))
        .is_ok_and(|_| report::is_report_html(&head))
}

/// `print!` that returns `std::io::Result` instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::stdout(format_args!($($arg)*))
    };
}

/// `println!` that returns `std::io::Result` instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` that ignores a closed stderr.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::stderr_line(format_args!($($arg)*))
    };
}

pub(crate) use {errln, out, outln};
