//! The host at a glance, for the System page: memory (`/proc/meminfo`), this process's
//! resident memory (`/proc/self/status`), load (`/proc/loadavg`) and uptime
//! (`/proc/uptime`), all from `proc(5)`. Unreadable values are `None`.

/// Memory in bytes: the machine's total and available, and this process's resident set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// `MemTotal`.
    pub total: Option<u64>,
    /// `MemAvailable`.
    pub available: Option<u64>,
    /// This process's `VmRSS`.
    pub resident: Option<u64>,
}

/// A `Key:   123 kB` value of a `/proc` status file, in bytes.
fn kib(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let n: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(n * 1024)
}

/// Reads the memory figures.
pub fn memory() -> Memory {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    Memory {
        total: kib(&info, "MemTotal:"),
        available: kib(&info, "MemAvailable:"),
        resident: kib(&status, "VmRSS:"),
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn load() -> Option<(f64, f64, f64)> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut f = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some((f.next()??, f.next()??, f.next()??))
}

/// Seconds since the machine booted.
pub fn uptime() -> Option<f64> {
    std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_values() {
        assert_eq!(
            kib("MemTotal:       16326460 kB\n", "MemTotal:"),
            Some(16326460 * 1024)
        );
        assert_eq!(kib("VmRSS:\t  1234 kB\n", "VmRSS:"), Some(1234 * 1024));
        assert_eq!(kib("MemTotal: lots\n", "MemTotal:"), None);
        let m = memory();
        assert!(m.total.is_some() && m.resident.is_some(), "{m:?}");
        assert!(uptime().is_some_and(|u| u > 0.0));
        assert!(load().is_some());
    }
}
