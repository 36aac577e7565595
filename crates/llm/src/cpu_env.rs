//! Process settings for tensor work on the CPU, which Candle and glibc read once at start-up, so
//! they are applied by re-executing the program with them added to its environment.
//!
//! - `CANDLE_NUM_THREADS=1`: Candle 0.11 runs elementwise ops on its own pool, whose workers
//!   spin for a while after every op; during the matmul that usually follows (on rayon, every
//!   core) they take cores from it. With the heavy elementwise work in this crate's own kernels
//!   (on rayon), what is left on Candle's pool is cheaper on one thread than the spinning:
//!   a 4 × 128 LoRA step took 1.69–1.84 s instead of 1.93–2.26 s, and eval answered 9.1–9.5
//!   instead of 8.7–8.9 items/s, on 2 cores (BENCHMARKS.md).
//! - glibc's `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`, `MALLOC_TOP_PAD_`: a training
//!   step allocates and frees activations of a few MB each, and by default glibc hands many
//!   back to the kernel and takes them again, zeroed page by page: up to 330,000 page faults a
//!   step at 4 × 128. Keeping freed memory in the heap brings that to almost none; peak memory
//!   does not change (the peak is the same tensors).
//!
//! A variable already set is left as it is, so users can still choose their own values.

/// The settings, as environment variables.
pub const CPU_ENV: &[(&str, &str)] = &[
    ("CANDLE_NUM_THREADS", "1"),
    ("MALLOC_MMAP_THRESHOLD_", "33554432"),
    ("MALLOC_TRIM_THRESHOLD_", "1073741824"),
    ("MALLOC_TOP_PAD_", "67108864"),
];

/// The settings of [`CPU_ENV`] that `get` (an environment lookup) does not have.
pub fn missing(
    get: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Vec<(&'static str, &'static str)> {
    CPU_ENV
        .iter()
        .filter(|(name, _)| get(name).is_none())
        .copied()
        .collect()
}

/// Call first thing in `main`, before any thread starts: when a setting of [`CPU_ENV`] is
/// missing from the environment, replaces this process (same pid, arguments, stdio) by the
/// same program with the settings added, so this returns only when they were all present
/// already or when re-executing failed (the error says why; the program can go on without
/// them, only slower). Elsewhere than on Unix it does nothing.
pub fn apply() -> std::io::Result<()> {
    let missing = missing(|name| std::env::var_os(name));
    if missing.is_empty() {
        return Ok(());
    }
    reexec(&missing)
}

/// The settings as this process sees them, `NAME=value` separated by spaces (`NAME=` when
/// unset), for logs.
pub fn describe() -> String {
    CPU_ENV
        .iter()
        .map(|(name, _)| {
            let value = std::env::var_os(name).unwrap_or_default();
            format!("{name}={}", value.to_string_lossy())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(unix)]
fn reexec(vars: &[(&str, &str)]) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let mut command = std::process::Command::new(exe);
    if let Some(arg0) = std::env::args_os().next() {
        command.arg0(arg0);
    }
    command.args(std::env::args_os().skip(1));
    command.envs(vars.iter().copied());
    // `exec` returns only on failure.
    Err(command.exec())
}

#[cfg(not(unix))]
fn reexec(_vars: &[(&str, &str)]) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn only_unset_variables_are_added() {
        assert_eq!(missing(|_| None).len(), CPU_ENV.len());
        let user_threads = |name: &str| (name == "CANDLE_NUM_THREADS").then(|| OsString::from("4"));
        let m = missing(user_threads);
        assert_eq!(m.len(), CPU_ENV.len() - 1);
        assert!(m.iter().all(|(name, _)| *name != "CANDLE_NUM_THREADS"));
        assert!(missing(|_| Some(OsString::from("x"))).is_empty());
    }
}
