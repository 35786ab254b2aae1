//! Running under systemd (`Type=notify`, `WatchdogSec=`): readiness, stopping, and a
//! watchdog fed only while the process does its job.
//!
//! The protocol is sd_notify(3): datagrams such as `READY=1` to the socket named by
//! `NOTIFY_SOCKET`; `WATCHDOG_USEC` says how often `WATCHDOG=1` must come. Without those
//! variables (a terminal, a test, another supervisor) every call here does nothing.
//!
//! What "doing its job" means is the point of the watchdog. Feeding it from a timer alone
//! would only prove that the async runtime runs. `vigil serve` feeds it only while no
//! recorded stream is *stalled*: frames keep arriving from the camera but no fragment has
//! been made durable for a whole watchdog period (a writer hung on a dead disk, a lock, a
//! bug). A camera that goes offline is not a stall (there is nothing to write; the ingest
//! reconnects by itself), so systemd never restarts the recorder over one camera — only
//! over a recorder that has stopped recording what it receives. `vigil camera` feeds it
//! while its encoder publishes pictures.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::time::Instant;
use tracing::{info, warn};

/// Tells the service manager the process is up (`READY=1`), with a status line.
pub(crate) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells the service manager the process is stopping (`STOPPING=1`), so that a slow close
/// of the open files is not mistaken for a hang.
pub(crate) fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState]) {
    // Without NOTIFY_SOCKET this returns Ok at once; an error means systemd asked for
    // notifications and cannot get them, which it reports itself (a start timeout).
    if let Err(e) = sd_notify::notify(states) {
        warn!("sd_notify: {e}");
    }
}

/// Feeds the systemd watchdog every third of its period while `healthy()` says so, until
/// the returned task is aborted. `None` when systemd set no watchdog.
pub(crate) fn spawn_watchdog<F>(mut healthy: F) -> Option<tokio::task::JoinHandle<()>>
where
    F: FnMut(Instant, Duration) -> bool + Send + 'static,
{
    let period = watchdog_period()?;
    info!(period_ms = period.as_millis() as u64, "systemd watchdog on");
    let tick = (period / 3).max(Duration::from_millis(100));
    Some(tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if healthy(Instant::now(), period) {
                send(&[NotifyState::Watchdog]);
            }
        }
    }))
}

/// One recorded stream as the watchdog sees it: frames received from the camera and
/// fragments made durable, both monotonic (a restarted camera's frames may start over).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StreamProgress {
    /// `camera/stream`.
    pub name: String,
    /// Access units received by the ingest.
    pub frames: u64,
    /// Fragments appended and fsynced by the writer.
    pub fragments: u64,
}

/// Finds recorded streams that receive frames but write nothing (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct StallDetector {
    /// Per stream: the counters last seen, and when it last wrote or was idle.
    seen: HashMap<String, (u64, u64, Instant)>,
    /// Streams already reported, so the log says it once per stall.
    reported: Vec<String>,
}

impl StallDetector {
    /// Takes a sample at `now`; returns the streams stalled for longer than `limit`.
    pub(crate) fn observe(
        &mut self,
        now: Instant,
        limit: Duration,
        streams: impl IntoIterator<Item = StreamProgress>,
    ) -> Vec<String> {
        let mut next = HashMap::new();
        let mut stalled = Vec::new();
        for s in streams {
            let since = match self.seen.get(&s.name) {
                // Wrote something, or received nothing new (offline, or a camera restarted
                // and counting from 0): not stalled, whatever the writer does.
                Some(&(frames, fragments, since)) => {
                    if s.fragments != fragments || s.frames <= frames {
                        now
                    } else {
                        since
                    }
                }
                None => now,
            };
            if now.saturating_duration_since(since) > limit {
                stalled.push(s.name.clone());
            }
            next.insert(s.name, (s.frames, s.fragments, since));
        }
        self.seen = next;
        for name in &stalled {
            if !self.reported.contains(name) {
                warn!(
                    stream = %name,
                    "watchdog: frames arrive but nothing has been written for {limit:?}; \
                     not feeding the systemd watchdog, which will restart the recorder"
                );
            }
        }
        self.reported = stalled.clone();
        stalled
    }
}

/// How long a stream may receive without writing before `vigil serve` counts as stalled,
/// when systemd set no watchdog period (which is then the limit).
pub(crate) const DEFAULT_STALL_LIMIT: Duration = Duration::from_secs(30);

/// The systemd watchdog period, if one is set for this process.
pub(crate) fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

/// The recorder's liveness, shared by the systemd watchdog and `GET /healthz`: which
/// recorded streams are stalled (see the module doc), sampled by a task of its own.
#[derive(Debug, Default)]
pub(crate) struct Health {
    stalled: std::sync::Mutex<Vec<String>>,
}

impl Health {
    /// Starts sampling `nvr` four times per `limit`; abort the task to stop.
    pub(crate) fn start(
        nvr: Arc<vigil_nvr::Nvr>,
        limit: Duration,
    ) -> (Arc<Health>, tokio::task::JoinHandle<()>) {
        let health = Arc::new(Health::default());
        let h = health.clone();
        let task = tokio::spawn(async move {
            let mut sample = recorder_sampler(nvr);
            let mut interval = tokio::time::interval((limit / 4).max(Duration::from_millis(250)));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let stalled = sample(Instant::now(), limit);
                *h.stalled.lock().unwrap_or_else(|e| e.into_inner()) = stalled;
            }
        });
        (health, task)
    }

    /// No recorded stream is stalled.
    pub(crate) fn ok(&self) -> bool {
        self.stalled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

/// Samples the recorder: the streams stalled for longer than the limit.
fn recorder_sampler(
    nvr: Arc<vigil_nvr::Nvr>,
) -> impl FnMut(Instant, Duration) -> Vec<String> + Send + 'static {
    let mut detector = StallDetector::default();
    move |now, period| {
        let written: HashMap<(String, String), u64> = nvr
            .recorder()
            .stream_stats()
            .into_iter()
            .map(|(camera, stream, s)| ((camera, stream), s.fragments_written))
            .collect();
        let streams = nvr.stream_counters().into_iter().filter_map(|c| {
            let name = format!("{}/{}", c.camera, c.stream);
            // A stream with no writer yet (still connecting) has nothing to judge.
            let fragments = *written.get(&(c.camera, c.stream))?;
            Some(StreamProgress {
                name,
                frames: c.frames,
                fragments,
            })
        });
        detector.observe(now, period, streams.collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, frames: u64, fragments: u64) -> StreamProgress {
        StreamProgress {
            name: name.into(),
            frames,
            fragments,
        }
    }

    #[test]
    fn only_a_stream_that_receives_without_writing_stalls() {
        let mut d = StallDetector::default();
        let limit = Duration::from_secs(30);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(d
            .observe(at(0), limit, [p("a", 0, 0), p("b", 0, 0)])
            .is_empty());
        // a records normally; b's writer hangs while its frames keep coming.
        assert!(d
            .observe(at(10), limit, [p("a", 150, 9), p("b", 150, 0)])
            .is_empty());
        assert!(d
            .observe(at(30), limit, [p("a", 450, 29), p("b", 450, 0)])
            .is_empty());
        assert_eq!(
            d.observe(at(31), limit, [p("a", 465, 30), p("b", 465, 0)]),
            vec!["b".to_owned()]
        );
        // b writes again: healthy at once.
        assert!(d
            .observe(at(40), limit, [p("a", 600, 39), p("b", 600, 1)])
            .is_empty());
    }

    #[test]
    fn an_offline_or_restarted_camera_is_not_a_stall() {
        let mut d = StallDetector::default();
        let limit = Duration::from_secs(30);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        d.observe(at(0), limit, [p("a", 100, 5)]);
        // Offline for minutes: no new frames, no new fragments.
        for s in [30, 60, 90, 120] {
            assert!(d.observe(at(s), limit, [p("a", 100, 5)]).is_empty());
        }
        // Restarted (edited in the web app): its ingest counts from 0 again.
        assert!(d.observe(at(150), limit, [p("a", 10, 5)]).is_empty());
        // A stream removed from the configuration is forgotten.
        assert!(d.observe(at(200), limit, []).is_empty());
        assert!(d.seen.is_empty());
    }
}
