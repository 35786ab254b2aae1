//! CPU time and resident memory of a server process, from `/proc` (Linux only).
//!
//! `/proc/PID/stat` sums utime and stime over all threads of the process, so GStreamer's streaming
//! threads and Vigil's tokio workers are counted alike. Those times tick at 100 Hz (10 ms), too
//! coarse for a server using a few percent of a core over 10 s, so [`sample`] also reads each
//! thread's scheduler runtime (`se.sum_exec_runtime` in `/proc/PID/task/TID/sched`, nanosecond
//! accounting shown in ms with 6 decimals) and [`cpu_between`] sums the per-thread differences.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::BenchError;

/// One sample of a process's resource use.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcSample {
    /// User + system CPU time consumed so far, in seconds.
    pub cpu_s: f64,
    /// Resident set size (VmRSS), in bytes.
    pub rss_bytes: u64,
    /// Scheduler runtime so far of each live thread (tid → seconds), when the kernel exposes
    /// `/proc/PID/task/TID/sched` (`CONFIG_SCHED_DEBUG`); empty otherwise.
    pub threads: BTreeMap<u32, f64>,
}

/// CPU time used between two samples of one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuDelta {
    /// Seconds of CPU, from per-thread runtimes when both samples have them, else from ticks.
    pub cpu_s: f64,
    /// Whether `cpu_s` comes from the precise per-thread runtimes.
    pub precise: bool,
    /// Threads present in the first sample but gone in the second: their CPU time between
    /// their last sample and their exit is missing from `cpu_s`.
    pub vanished_threads: usize,
}

/// CPU used by the process between `before` and `after` (both of the same pid).
///
/// Threads born in between count with their whole runtime; threads that died in between are
/// counted as reported in [`CpuDelta::vanished_threads`] (the tick-based total would include
/// them, so it is the fallback when no per-thread figure exists).
pub fn cpu_between(before: &ProcSample, after: &ProcSample) -> CpuDelta {
    if before.threads.is_empty() || after.threads.is_empty() {
        return CpuDelta {
            cpu_s: after.cpu_s - before.cpu_s,
            precise: false,
            vanished_threads: 0,
        };
    }
    let cpu_s = after
        .threads
        .iter()
        .map(|(tid, t)| t - before.threads.get(tid).copied().unwrap_or(0.0))
        .sum();
    let vanished_threads = before
        .threads
        .keys()
        .filter(|tid| !after.threads.contains_key(tid))
        .count();
    CpuDelta {
        cpu_s,
        precise: true,
        vanished_threads,
    }
}

/// Parses `se.sum_exec_runtime` (milliseconds, printed with 6 decimals) from the text of
/// `/proc/PID/task/TID/sched` into seconds.
pub fn parse_sched_runtime(sched: &str) -> Option<f64> {
    let line = sched
        .lines()
        .find(|l| l.starts_with("se.sum_exec_runtime"))?;
    let ms: f64 = line.rsplit(':').next()?.trim().parse().ok()?;
    Some(ms / 1000.0)
}

/// Every live thread's runtime; threads that exit while we read are skipped.
fn thread_runtimes(pid: u32) -> BTreeMap<u32, f64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeMap::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let tid: u32 = e.file_name().to_str()?.parse().ok()?;
        let text = std::fs::read_to_string(e.path().join("sched")).ok()?;
        Some((tid, parse_sched_runtime(&text)?))
    })
    .collect()
}

/// Clock ticks per second for `/proc/PID/stat` times (`getconf CLK_TCK`, 100 on every common Linux).
fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// Parses utime + stime (in ticks) from the text of `/proc/PID/stat`.
///
/// proc(5): the second field is the command name in parentheses and may itself contain spaces and
/// parentheses, so fields are counted from the last `)`. utime and stime are fields 14 and 15.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After the comm field comes field 3 (state); utime is field 14, i.e. the 12th from here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Parses VmRSS (in bytes) from the text of `/proc/PID/status`.
pub fn parse_status_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Samples CPU time and RSS of process `pid`.
pub fn sample(pid: u32) -> Result<ProcSample, BenchError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(BenchError::io(format!("reading /proc/{pid}/stat")))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(BenchError::io(format!("reading /proc/{pid}/status")))?;
    let ticks = parse_stat_ticks(&stat)
        .ok_or_else(|| BenchError::Server(format!("unparsable /proc/{pid}/stat")))?;
    let rss_bytes = parse_status_rss(&status)
        .ok_or_else(|| BenchError::Server(format!("no VmRSS in /proc/{pid}/status")))?;
    Ok(ProcSample {
        cpu_s: ticks as f64 / clk_tck(),
        rss_bytes,
        threads: thread_runtimes(pid),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        // Fields 14 (utime) = 250 and 15 (stime) = 50.
        let stat =
            "1234 (gst (rtsp) x) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 5 0 100 \
                    2000000 3000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(300));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert_eq!(parse_stat_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn status_rss() {
        let status = "Name:\tvigil\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_status_rss(status), Some(12345 * 1024));
        assert_eq!(parse_status_rss("Name: x\n"), None);
    }

    #[test]
    fn sched_runtime() {
        let sched = "vigil-io (4242, #threads: 3)\n----\nse.exec_start    :   3480667.870386\n\
                     se.vruntime      :     20297.151\nse.sum_exec_runtime   :   1234.567891\n";
        let s = parse_sched_runtime(sched).unwrap();
        assert!((s - 1.234567891).abs() < 1e-12);
        assert_eq!(parse_sched_runtime("se.vruntime : 1.0\n"), None);
    }

    #[test]
    fn cpu_between_threads() {
        let s = |cpu_s: f64, threads: &[(u32, f64)]| ProcSample {
            cpu_s,
            rss_bytes: 1,
            threads: threads.iter().copied().collect(),
        };
        // Thread 1 ran 0.5 s, thread 3 was born and ran 0.25 s, thread 2 died.
        let d = cpu_between(
            &s(1.0, &[(1, 1.0), (2, 2.0)]),
            &s(2.0, &[(1, 1.5), (3, 0.25)]),
        );
        assert!((d.cpu_s - 0.75).abs() < 1e-12);
        assert!(d.precise);
        assert_eq!(d.vanished_threads, 1);
        // Without per-thread figures: ticks.
        let d = cpu_between(&s(1.0, &[]), &s(1.5, &[]));
        assert!((d.cpu_s - 0.5).abs() < 1e-12);
        assert!(!d.precise);
    }

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_bytes > 0);
        assert!(s.cpu_s >= 0.0);
    }
}
