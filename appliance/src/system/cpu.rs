//! How busy the whole machine is: the kernel's CPU time counters (`/proc/stat`, Linux
//! `proc(5)`), so the ABR supervisor can see real room, including load that is not ours.

use std::io;

/// The machine's CPU time so far, summed over every CPU, in clock ticks (`USER_HZ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Ticks spent idle or waiting for I/O.
    pub idle: u64,
    /// All ticks: busy (user, nice, system, irq, softirq, steal) and idle.
    pub total: u64,
    /// CPUs counted (`cpuN` lines).
    pub cpus: usize,
}

impl CpuTimes {
    /// Reads `/proc/stat`.
    ///
    /// # Errors
    /// The file cannot be read, or does not have the layout of `proc(5)`.
    pub fn read() -> io::Result<CpuTimes> {
        CpuTimes::parse(&std::fs::read_to_string("/proc/stat")?)
    }

    /// Parses the text of `/proc/stat`: the aggregate `cpu` line (user nice system idle
    /// iowait irq softirq steal …) and the count of `cpuN` lines.
    ///
    /// # Errors
    /// `InvalidData` when there is no aggregate line or it has fewer than 5 numbers.
    pub fn parse(text: &str) -> io::Result<CpuTimes> {
        let bad =
            |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("/proc/stat: {why}"));
        let line = text
            .lines()
            .find(|l| l.starts_with("cpu "))
            .ok_or_else(|| bad("no aggregate cpu line"))?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| bad("a counter is not a number"))?;
        if fields.len() < 5 {
            return Err(bad("too few counters"));
        }
        let cpus = text
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count()
            .max(1);
        Ok(CpuTimes {
            idle: fields[3] + fields[4],
            total: fields.iter().sum(),
            cpus,
        })
    }

    /// Idle CPUs on average (0 to `cpus`) between `earlier` and this reading; `None` when
    /// no time passed or the counters went back.
    pub fn idle_cores_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total).filter(|t| *t > 0)?;
        let idle = self.idle.checked_sub(earlier.idle)?;
        Some(idle.min(total) as f64 / total as f64 * self.cpus as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_cores_come_from_the_aggregate_line() {
        let a = CpuTimes::parse(
            "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\ncpu1 50 0 50 400 0 0 0 0 0 0\nintr 1\n",
        )
        .expect("parse");
        assert_eq!((a.idle, a.total, a.cpus), (800, 1000, 2));
        // 100 more ticks, three quarters of them idle: 1.5 of 2 CPUs.
        let b = CpuTimes::parse("cpu  110 0 10 875 0 0 0 0\ncpu0 1\ncpu1 1\n").expect("parse");
        assert_eq!(b.idle_cores_since(&a), None, "counters went back");
        let b = CpuTimes::parse("cpu  115 0 110 870 5 0 0 0\ncpu0 1\ncpu1 1\n").expect("parse");
        assert_eq!(b.idle_cores_since(&a), Some(1.5));
        assert_eq!(a.idle_cores_since(&a), None, "no time passed");
        assert!(CpuTimes::parse("intr 1\n").is_err());
        assert!(CpuTimes::parse("cpu  1 2 x 4 5\n").is_err());
        assert!(CpuTimes::parse("cpu  1 2 3\n").is_err());
        assert!(CpuTimes::read().is_ok_and(|t| t.total > 0));
    }
}
