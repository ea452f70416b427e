//! The CPU time of this process, and a stopwatch for wall-clock and CPU time together.

use std::time::{Duration, Instant};

/// CPU time (user + system) this process has used, from `/proc/self/stat` (Linux).
pub(crate) fn process_cpu() -> Option<Duration> {
    cpu_from("/proc/self/stat")
}

/// CPU time (user + system) that process `pid` has used, from `/proc/<pid>/stat` (Linux), or
/// `None` when there is no such process or no `/proc`.
pub(crate) fn process_cpu_of(pid: u32) -> Option<Duration> {
    cpu_from(&format!("/proc/{pid}/stat"))
}

/// Fields 14 and 15 of a `/proc/<pid>/stat` file count in USER_HZ ticks, which the kernel fixes
/// at 100 per second for `/proc` on every mainstream architecture. `None` elsewhere.
fn cpu_from(path: &str) -> Option<Duration> {
    const USER_HZ: u64 = 100;
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces; the fields after its `)` are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// A stopwatch for wall-clock and process CPU time.
pub(crate) struct Watch {
    start: Instant,
    cpu: Option<Duration>,
}

impl Watch {
    /// Starts both clocks.
    pub(crate) fn start() -> Self {
        Self {
            cpu: process_cpu(),
            start: Instant::now(),
        }
    }

    /// The wall-clock time since the start, and the CPU time where the OS reports it.
    pub(crate) fn stop(&self) -> (Duration, Option<Duration>) {
        let elapsed = self.start.elapsed();
        let cpu = self
            .cpu
            .zip(process_cpu())
            .map(|(a, b)| b.saturating_sub(a));
        (elapsed, cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_cpu_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(process_cpu().is_some());
            assert!(process_cpu_of(std::process::id()).is_some());
            // Process ids never reach u32::MAX.
            assert!(process_cpu_of(u32::MAX).is_none());
        }
    }
}
