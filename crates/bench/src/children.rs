//! Child processes that are not RTSP servers (a recorder, a fleet of ffmpeg processes), with a
//! guard that always stops them, and the memory figures `procstat` does not read.
//!
//! [`servers::ServerGuard`](crate::servers::ServerGuard) waits for `listening rtsp ADDR` and gives
//! a server 3 s to stop. A recorder closing 64 files, or 64 ffmpeg processes writing their MP4
//! trailers on two cores, need longer, and their stdout is either a stream of state lines
//! (`vigil serve`) or nothing at all (ffmpeg). [`ChildGuard`] covers those.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::BenchError;

/// A running child process, stopped (SIGTERM, then SIGKILL after its grace period) when dropped.
pub struct ChildGuard {
    child: Child,
    grace: Duration,
    status: Option<ExitStatus>,
}

impl ChildGuard {
    /// Spawns `cmd` with stdin closed, stdout discarded and stderr appended to `log`.
    pub fn spawn(cmd: Command, log: &Path, grace: Duration) -> Result<ChildGuard, BenchError> {
        Ok(Self::spawn_inner(cmd, log, grace, false)?.0)
    }

    /// Like [`spawn`](Self::spawn), but every stdout line is sent on the returned channel (a
    /// thread drains stdout for the child's life, so the pipe never fills).
    pub fn spawn_with_lines(
        cmd: Command,
        log: &Path,
        grace: Duration,
    ) -> Result<(ChildGuard, mpsc::Receiver<String>), BenchError> {
        let (guard, rx) = Self::spawn_inner(cmd, log, grace, true)?;
        let rx = rx.ok_or_else(|| BenchError::Server("no stdout pipe".into()))?;
        Ok((guard, rx))
    }

    fn spawn_inner(
        mut cmd: Command,
        log: &Path,
        grace: Duration,
        lines: bool,
    ) -> Result<(ChildGuard, Option<mpsc::Receiver<String>>), BenchError> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(BenchError::io(format!("creating {}", log.display())))?;
        cmd.stdin(Stdio::null())
            .stdout(if lines { Stdio::piped() } else { Stdio::null() })
            .stderr(log_file);
        let mut child = cmd
            .spawn()
            .map_err(BenchError::io(format!("starting {:?}", cmd.get_program())))?;
        let rx = child.stdout.take().map(|stdout| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
            rx
        });
        Ok((
            ChildGuard {
                child,
                grace,
                status: None,
            },
            rx,
        ))
    }

    /// The process id, for `/proc` sampling.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended (without waiting).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        stop_all(std::slice::from_mut(self));
    }
}

/// Sends SIGTERM to every child still running (one `kill` call, so they all start closing their
/// files at once), waits up to the longest grace period, then SIGKILLs the rest. Returns the exit
/// statuses (`None`: had to be killed).
pub fn stop_all(children: &mut [ChildGuard]) -> Vec<Option<ExitStatus>> {
    let running: Vec<String> = children
        .iter_mut()
        .filter_map(|c| c.exited().is_none().then(|| c.pid().to_string()))
        .collect();
    if !running.is_empty() {
        // `kill(1)`: the workspace denies the unsafe libc call.
        let _ = Command::new("kill")
            .arg("-TERM")
            .args(&running)
            .stderr(Stdio::null())
            .status();
    }
    let grace = children.iter().map(|c| c.grace).max().unwrap_or_default();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && children.iter_mut().any(|c| c.exited().is_none()) {
        std::thread::sleep(Duration::from_millis(50));
    }
    children
        .iter_mut()
        .map(|c| {
            if c.exited().is_none() {
                let _ = c.child.kill();
                let _ = c.child.wait();
                None
            } else {
                c.status
            }
        })
        .collect()
}

/// Memory figures of a process beyond VmRSS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemSample {
    /// Peak resident set size (VmHWM), bytes.
    pub peak_rss_bytes: u64,
    /// Proportional set size (shared pages divided among the processes mapping them), bytes;
    /// 0 when `/proc/PID/smaps_rollup` is not readable. Summing RSS over 64 ffmpeg processes
    /// counts their shared libraries 64 times; summing PSS does not.
    pub pss_bytes: u64,
}

/// Reads VmHWM and Pss of `pid`.
pub fn mem_sample(pid: u32) -> Result<MemSample, BenchError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(BenchError::io(format!("reading /proc/{pid}/status")))?;
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    Ok(MemSample {
        peak_rss_bytes: parse_kb_field(&status, "VmHWM:").unwrap_or(0),
        pss_bytes: parse_kb_field(&rollup, "Pss:").unwrap_or(0),
    })
}

/// The name (`comm`, at most 15 bytes) of every live thread of `pid`, to tell where a process
/// spends its CPU (e.g. Vigil's `rec-CAM/STREAM` writer threads vs its tokio workers).
pub fn thread_names(pid: u32) -> BTreeMap<u32, String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeMap::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let tid: u32 = e.file_name().to_str()?.parse().ok()?;
        let name = std::fs::read_to_string(e.path().join("comm")).ok()?;
        Some((tid, name.trim_end().to_string()))
    })
    .collect()
}

/// Parses a `NAME:   1234 kB` line of a `/proc` file into bytes.
pub fn parse_kb_field(text: &str, name: &str) -> Option<u64> {
    let rest = text.lines().find_map(|l| l.strip_prefix(name))?;
    let kb: u64 = rest.split_ascii_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kb_fields() {
        let status = "Name:\tffmpeg\nVmHWM:\t   20480 kB\nVmRSS:\t   12345 kB\n";
        assert_eq!(parse_kb_field(status, "VmHWM:"), Some(20480 * 1024));
        let rollup = "55c1-7ffd ---p 00000000 00:00 0 [rollup]\nRss:  1684 kB\nPss:  224 kB\n\
                      Pss_Anon:   100 kB\n";
        // `Pss:` must not match `Pss_Anon:`.
        assert_eq!(parse_kb_field(rollup, "Pss:"), Some(224 * 1024));
        assert_eq!(parse_kb_field(rollup, "Swap:"), None);
        assert_eq!(parse_kb_field("Pss: lots kB\n", "Pss:"), None);
    }

    #[test]
    fn names_of_this_process_threads() {
        let names = thread_names(std::process::id());
        assert!(names.contains_key(&std::process::id()));
        assert!(thread_names(u32::MAX).is_empty());
    }

    #[test]
    fn guard_stops_a_sleeping_child() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("60");
        let mut guards =
            vec![ChildGuard::spawn(cmd, &dir.path().join("log"), Duration::from_secs(5)).unwrap()];
        assert!(guards[0].exited().is_none());
        let t0 = Instant::now();
        let statuses = stop_all(&mut guards);
        // sleep dies of SIGTERM at once: an exit status, not a SIGKILL after the grace period.
        assert_eq!(statuses.len(), 1);
        assert!(statuses[0].is_some());
        assert!(t0.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn lines_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("printf");
        cmd.arg("recording a/main\\nrecording b/main\\n");
        let (_g, rx) =
            ChildGuard::spawn_with_lines(cmd, &dir.path().join("log"), Duration::from_secs(1))
                .unwrap();
        let got: Vec<String> = rx.iter().collect();
        assert_eq!(got, ["recording a/main", "recording b/main"]);
    }
}
