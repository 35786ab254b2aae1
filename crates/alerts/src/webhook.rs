//! One delivery task per webhook endpoint. Events are POSTed in order; a failed attempt is
//! retried with exponential back-off (1 s doubling to 5 min) until `give_up_after_s` after the
//! event was sent, then counted as failed. The queue is bounded (oldest dropped, counted as
//! failed), and the task keeps draining its channel while it waits, so `send` never blocks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::config::{Secret, WebhookConfig};
use crate::http::{self, Endpoint};
use crate::sign;

/// Events held per endpoint while it is unreachable.
const QUEUE_MAX: usize = 1000;
/// Channel from `send` to the task (drained continuously; only a stuck task fills it).
const CHANNEL: usize = 256;
/// Time the task gets at shutdown to deliver what is queued.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Delay before retry number `failures` (1 = after the first failure): 1 s, 2 s, 4 s, …,
/// capped at 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    Duration::from_secs((1u64 << exp).min(300))
}

/// Counters shown in `status()`.
#[derive(Debug, Default)]
pub(crate) struct WebhookStats {
    url: String,
    delivered: u64,
    failed: u64,
    queued: usize,
    last_error: Option<String>,
}

impl WebhookStats {
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "url": self.url,
            "delivered": self.delivered,
            "failed": self.failed,
            "queued": self.queued,
            "last_error": self.last_error,
        })
    }
}

#[derive(Clone)]
struct Job {
    body: Bytes,
    event_type: &'static str,
    since: Instant,
    delivery: String,
}

/// `send` side of one endpoint.
pub(crate) struct WebhookHandle {
    tx: mpsc::Sender<Job>,
    events: Option<Vec<String>>,
    stats: Arc<Mutex<WebhookStats>>,
    task: tokio::task::JoinHandle<()>,
}

fn lock(stats: &Mutex<WebhookStats>) -> std::sync::MutexGuard<'_, WebhookStats> {
    // A panic while holding this lock cannot leave the counters inconsistent in a way that
    // matters; keep going with the data.
    stats.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the task for one endpoint; `None` (and the error in the stats) if the config is bad.
pub(crate) fn spawn(cfg: WebhookConfig) -> (Option<WebhookHandle>, Arc<Mutex<WebhookStats>>) {
    let stats = Arc::new(Mutex::new(WebhookStats {
        url: vigil_auth::secret::redact_url(&cfg.url),
        ..Default::default()
    }));
    let endpoint = cfg.validate().and_then(|()| {
        let https = cfg.url.to_ascii_lowercase().starts_with("https:");
        let roots = if https {
            Some(http::load_roots(cfg.ca_file.as_deref())?)
        } else {
            None
        };
        Endpoint::parse(&cfg.url, roots)
    });
    let endpoint = match endpoint {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("webhook {} disabled: {e}", lock(&stats).url);
            lock(&stats).last_error = Some(format!("disabled: {e}"));
            return (None, stats);
        }
    };
    let (tx, rx) = mpsc::channel(CHANNEL);
    let worker = Worker {
        endpoint,
        secret: cfg.secret,
        timeout: Duration::from_secs(cfg.timeout_s),
        give_up: Duration::from_secs(cfg.give_up_after_s),
    };
    let queue = Queue {
        jobs: VecDeque::new(),
        stats: stats.clone(),
    };
    let task = tokio::spawn(worker.run(queue, rx));
    (
        Some(WebhookHandle {
            tx,
            events: cfg.events,
            stats: stats.clone(),
            task,
        }),
        stats,
    )
}

static DELIVERY_SEQ: AtomicU64 = AtomicU64::new(0);

fn unix_now() -> SystemTime {
    SystemTime::now()
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A delivery id unique per event and endpoint (stable across retries, so receivers can
/// drop duplicates): start time of this process in µs and a counter.
fn delivery_id() -> String {
    static BASE: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let base = BASE.get_or_init(|| {
        unix_now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0)
    });
    format!("{base:x}-{}", DELIVERY_SEQ.fetch_add(1, Ordering::Relaxed))
}

impl WebhookHandle {
    pub(crate) fn send(&self, event_type: &'static str, body: Bytes) {
        if !self
            .events
            .as_ref()
            .is_none_or(|e| e.iter().any(|t| t == event_type))
        {
            return;
        }
        let job = Job {
            body,
            event_type,
            since: Instant::now(),
            delivery: delivery_id(),
        };
        if self.tx.try_send(job).is_err() {
            let mut s = lock(&self.stats);
            s.failed += 1;
            s.last_error = Some("queue full: event dropped".into());
            tracing::warn!("webhook {}: queue full, {event_type} event dropped", s.url);
        }
    }

    pub(crate) async fn shutdown(self) {
        drop(self.tx);
        let mut task = self.task;
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
            .await
            .is_err()
        {
            task.abort();
            let mut s = lock(&self.stats);
            if s.queued > 0 {
                tracing::warn!(
                    "webhook {}: {} events not delivered at shutdown",
                    s.url,
                    s.queued
                );
                s.failed += s.queued as u64;
                s.queued = 0;
            }
        }
    }
}

enum Failure {
    /// Worth retrying: network error, timeout, 408, 429, 5xx.
    Transient(String),
    /// Retrying cannot help: other 3xx/4xx (bad URL path, signature refused, redirect).
    Permanent(String),
}

struct Worker {
    endpoint: Endpoint,
    secret: Secret,
    timeout: Duration,
    give_up: Duration,
}

/// The events waiting for one endpoint, oldest first, and its counters.
struct Queue {
    jobs: VecDeque<Job>,
    stats: Arc<Mutex<WebhookStats>>,
}

impl Queue {
    fn push(&mut self, job: Job) {
        if self.jobs.len() >= QUEUE_MAX {
            if let Some(old) = self.jobs.pop_front() {
                let mut s = lock(&self.stats);
                s.failed += 1;
                s.last_error = Some("queue full: oldest event dropped".into());
                tracing::warn!(
                    "webhook {}: queue full, oldest {} event dropped",
                    s.url,
                    old.event_type
                );
            }
        }
        self.jobs.push_back(job);
        lock(&self.stats).queued = self.jobs.len();
    }

    /// Receives into the queue until `until` completes; returns its output. `closed` records
    /// that every sender is gone.
    async fn while_receiving<F: std::future::Future>(
        &mut self,
        rx: &mut mpsc::Receiver<Job>,
        closed: &mut bool,
        until: F,
    ) -> F::Output {
        tokio::pin!(until);
        loop {
            tokio::select! {
                out = &mut until => return out,
                job = rx.recv(), if !*closed => match job {
                    Some(job) => self.push(job),
                    None => *closed = true,
                },
            }
        }
    }

    /// Fails the event just attempted and every queued event older than the give-up time (they waited behind
    /// it just as long), logging each.
    fn give_up_expired(&mut self, give_up: Duration, e: &str) {
        let mut s = lock(&self.stats);
        let before = self.jobs.len();
        self.jobs.retain(|j| j.since.elapsed() < give_up);
        let dropped = 1 + before - self.jobs.len();
        tracing::warn!(
            "webhook {}: gave up on {dropped} event(s) after {} s: {e}",
            s.url,
            give_up.as_secs()
        );
        s.failed += dropped as u64;
        s.queued = self.jobs.len();
        s.last_error = Some(format!("gave up after {} s: {e}", give_up.as_secs()));
    }
}

impl Worker {
    async fn run(self, mut q: Queue, mut rx: mpsc::Receiver<Job>) {
        let mut failures: u32 = 0;
        let mut closed = false;
        loop {
            if q.jobs.is_empty() {
                if closed {
                    return;
                }
                match rx.recv().await {
                    Some(job) => q.push(job),
                    None => return,
                }
            }
            // The event being attempted leaves the queue, so a full queue drops the oldest
            // *waiting* event, never the one in flight.
            let Some(job) = q.jobs.pop_front() else {
                continue;
            };
            lock(&q.stats).queued = q.jobs.len() + 1;
            let attempt = attempt(&self.endpoint, &self.secret, &job, self.timeout);
            let result = q.while_receiving(&mut rx, &mut closed, attempt).await;
            match result {
                Ok(()) => {
                    failures = 0;
                    let mut s = lock(&q.stats);
                    s.delivered += 1;
                    s.queued = q.jobs.len();
                }
                Err(Failure::Permanent(e)) => {
                    failures = 0;
                    let mut s = lock(&q.stats);
                    tracing::warn!("webhook {}: {} event failed: {e}", s.url, job.event_type);
                    s.failed += 1;
                    s.queued = q.jobs.len();
                    s.last_error = Some(e);
                }
                Err(Failure::Transient(e)) => {
                    failures = failures.saturating_add(1);
                    let age = job.since.elapsed();
                    if age >= self.give_up {
                        q.give_up_expired(self.give_up, &e);
                    } else {
                        q.jobs.push_front(job);
                        let url = {
                            let mut s = lock(&q.stats);
                            s.queued = q.jobs.len();
                            s.last_error = Some(e.clone());
                            s.url.clone()
                        };
                        // Retry no later than the give-up time, so the last attempt happens
                        // right at it rather than up to 5 min after.
                        let wait = backoff(failures).min(self.give_up - age);
                        tracing::info!("webhook {url}: {e}; retry in {:.1} s", wait.as_secs_f32());
                        q.while_receiving(&mut rx, &mut closed, tokio::time::sleep(wait))
                            .await;
                    }
                }
            }
        }
    }
}

/// One signed POST. The timestamp is taken per attempt, so a retried request is as fresh as
/// the receiver's replay window expects.
async fn attempt(
    endpoint: &Endpoint,
    secret: &Secret,
    job: &Job,
    timeout: Duration,
) -> Result<(), Failure> {
    let ts = unix_secs(unix_now()).to_string();
    let sig = sign::sign(secret.expose().as_bytes(), &ts, &job.body);
    let headers = [
        (sign::TIMESTAMP_HEADER, ts),
        (sign::SIGNATURE_HEADER, sig),
        ("X-Vigil-Event", job.event_type.to_owned()),
        ("X-Vigil-Delivery", job.delivery.clone()),
    ];
    match endpoint.post(&headers, job.body.clone(), timeout).await {
        Ok(status) if (200..300).contains(&status) => Ok(()),
        Ok(status) if status == 408 || status == 429 || status >= 500 => {
            Err(Failure::Transient(format!("HTTP {status}")))
        }
        Ok(status) if (300..400).contains(&status) => Err(Failure::Permanent(format!(
            "HTTP {status} (redirects are not followed)"
        ))),
        Ok(status) => Err(Failure::Permanent(format!("HTTP {status}"))),
        Err(e) => Err(Failure::Transient(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_minutes() {
        let secs: Vec<u64> = (1..=12).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
        // About an hour of retrying is ~20 attempts, not thousands.
        let mut total = Duration::ZERO;
        let mut n = 0;
        while total < Duration::from_secs(3600) {
            n += 1;
            total += backoff(n);
        }
        assert!((15..=20).contains(&n), "{n}");
    }

    #[test]
    fn delivery_ids_are_unique() {
        let a = delivery_id();
        let b = delivery_id();
        assert_ne!(a, b);
    }
}
