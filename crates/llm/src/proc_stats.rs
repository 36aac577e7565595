//! What this process has used so far, read from Linux's `/proc/self`: peak resident memory
//! (reported with every training) and CPU seconds (the benches print them beside wall time).
//! Where `/proc` is missing both read as 0; nothing here fails.

/// Peak resident memory of this process (`VmHWM` in `/proc/self/status`), 0 where unknown.
pub fn peak_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let kb = line.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?;
                kb.trim().parse::<u64>().ok()
            })
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU seconds this process has used (user + system, all threads) from `/proc/self/stat`, 0
/// where unknown. On a shared machine it measures the work done, where wall time also measures
/// the neighbours; the benches print both.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}
