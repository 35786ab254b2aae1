//! CPU time and resident memory of a server process, from `/proc` (Linux only).
//!
//! `/proc/PID/stat` sums utime and stime over all threads of the process, so GStreamer's streaming
//! threads and Vigil's tokio workers are counted alike.

use std::sync::OnceLock;

use crate::BenchError;

/// One sample of a process's resource use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// User + system CPU time consumed so far, in seconds.
    pub cpu_s: f64,
    /// Resident set size (VmRSS), in bytes.
    pub rss_bytes: u64,
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
    fn samples_this_process() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_bytes > 0);
        assert!(s.cpu_s >= 0.0);
    }
}
