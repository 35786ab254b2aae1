//! The stream hub: one per camera stream, between the source that produces access units
//! and every sink that consumes them (RTSP sessions, recorder, live view, snapshots).
//!
//! Fan-out never copies frame data: every subscriber receives clones of the same
//! [`AccessUnit`], whose payload is a reference-counted [`bytes::Bytes`].
//!
//! A new subscriber starts on the current key frame at once: the hub keeps the access
//! units since the last key frame (the GOP) and hands them to the subscriber first.
//!
//! Memory is bounded: the broadcast channel holds at most `capacity` access units. A
//! subscriber that falls further behind does not stall the publisher or the others; it
//! is told it lagged, and [`Subscriber::recv`] skips ahead to the next key frame so the
//! decoder downstream never sees a broken reference chain.
//!
//! Subscribers are either live ([`Hub::subscribe`]: a viewer, an RTSP client — someone
//! waits for each frame) or bulk ([`Hub::subscribe_bulk`]: the recorder, motion
//! analysis — a frame 50 ms late costs nothing). The source asks
//! [`Hub::live_subscribers`] to decide whether it may trade latency for CPU (the ingest
//! batches its socket reads while nobody watches).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};
use vigil_media::{AccessUnit, StreamParams};

/// Upper bound on the GOP cache, so a source that never sends a key frame cannot grow
/// memory without bound (about 10 s at 30 fps).
const MAX_GOP_LEN: usize = 300;

/// A cloneable handle to one stream's hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    tx: broadcast::Sender<AccessUnit>,
    state: Mutex<State>,
    params_tx: watch::Sender<Option<Arc<StreamParams>>>,
    /// Subscribers from [`Hub::subscribe`] still alive (see [`LiveGuard`]). Its own `Arc`:
    /// a subscriber must not keep `tx` alive, or it would never see the stream end.
    live: Arc<AtomicUsize>,
}

#[derive(Default)]
struct State {
    gop: Vec<AccessUnit>,
    published: u64,
}

/// Why a subscriber gets no more access units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// Every publisher handle was dropped: the stream has ended.
    Closed,
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stream ended")
    }
}

impl std::error::Error for RecvError {}

impl Hub {
    /// Creates a hub named `name` (for logs) whose broadcast holds `capacity` access units.
    pub fn new(name: impl Into<String>, capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        let (params_tx, _) = watch::channel(None);
        Hub {
            inner: Arc::new(Inner {
                name: name.into(),
                tx,
                state: Mutex::new(State::default()),
                params_tx,
                live: Arc::new(AtomicUsize::new(0)),
            }),
        }
    }

    /// The hub's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Publishes an access unit to every subscriber.
    pub fn publish(&self, au: AccessUnit) {
        let mut state = self.lock();
        let params_changed = match &*self.inner.params_tx.borrow() {
            Some(p) => !Arc::ptr_eq(p, &au.params) && **p != *au.params,
            None => true,
        };
        if params_changed {
            self.inner.params_tx.send_replace(Some(au.params.clone()));
        }
        if au.key {
            state.gop.clear();
        }
        if state.gop.len() < MAX_GOP_LEN && (au.key || !state.gop.is_empty()) {
            state.gop.push(au.clone());
        }
        state.published += 1;
        // Sent under the lock so that `subscribe` sees either the GOP with this access
        // unit or the access unit on its receiver, never both and never neither.
        let _ = self.inner.tx.send(au);
    }

    /// Subscribes someone who waits for each frame (live view, an RTSP client): the
    /// returned subscriber yields the current GOP (starting on its key frame), then every
    /// access unit published from now on. While it lives, the source keeps its latency low.
    pub fn subscribe(&self) -> Subscriber {
        self.inner.live.fetch_add(1, Ordering::Relaxed);
        let mut sub = self.subscribe_bulk();
        sub._live = Some(LiveGuard(self.inner.live.clone()));
        sub
    }

    /// Subscribes a consumer that does not mind frames arriving in bursts up to ~100 ms
    /// late (recording, motion analysis); otherwise the same as [`Hub::subscribe`].
    pub fn subscribe_bulk(&self) -> Subscriber {
        let state = self.lock();
        let rx = self.inner.tx.subscribe();
        Subscriber {
            backlog: state.gop.iter().cloned().collect(),
            rx,
            need_key: state.gop.is_empty(),
            skipped: 0,
            _live: None,
        }
    }

    /// How many subscribers from [`Hub::subscribe`] are alive: while there are any, the
    /// source must not hold frames back.
    pub fn live_subscribers(&self) -> usize {
        self.inner.live.load(Ordering::Relaxed)
    }

    /// The codec parameters in force, once the source has produced a first access unit.
    pub fn params(&self) -> Option<Arc<StreamParams>> {
        self.inner.params_tx.borrow().clone()
    }

    /// Waits until the source has produced codec parameters.
    pub async fn wait_params(&self) -> Arc<StreamParams> {
        let mut rx = self.inner.params_tx.subscribe();
        loop {
            if let Some(p) = rx.borrow_and_update().clone() {
                return p;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `Inner`, which we hold: unreachable in practice.
                std::future::pending::<()>().await;
            }
        }
    }

    /// A copy of the current GOP (key frame first), e.g. to decode a snapshot.
    pub fn gop(&self) -> Vec<AccessUnit> {
        self.lock().gop.clone()
    }

    /// How many access units were published so far.
    pub fn published(&self) -> u64 {
        self.lock().published
    }

    /// Number of live subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.inner.tx.receiver_count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave `State` inconsistent (each field is
        // updated by a single assignment or push), so a poisoned lock is safe to reuse.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One consumer of a hub's access units.
pub struct Subscriber {
    backlog: VecDeque<AccessUnit>,
    rx: broadcast::Receiver<AccessUnit>,
    need_key: bool,
    skipped: u64,
    /// Counts this subscriber in [`Hub::live_subscribers`] until dropped.
    _live: Option<LiveGuard>,
}

/// Decrements the hub's count of live subscribers when its subscriber goes away.
struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Subscriber {
    /// The next access unit. After a lag, skips to the next key frame.
    pub async fn recv(&mut self) -> Result<AccessUnit, RecvError> {
        if let Some(au) = self.backlog.pop_front() {
            return Ok(au);
        }
        loop {
            match self.rx.recv().await {
                Ok(au) => {
                    if self.need_key && !au.key {
                        self.skipped += 1;
                        continue;
                    }
                    self.need_key = false;
                    return Ok(au);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(skipped = n, "subscriber lagged; skipping to next key frame");
                    self.skipped += n;
                    self.need_key = true;
                }
                Err(broadcast::error::RecvError::Closed) => return Err(RecvError::Closed),
            }
        }
    }

    /// Access units this subscriber never received because it fell behind.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Access units waiting for this subscriber (backlog plus channel).
    pub fn pending(&self) -> usize {
        self.backlog.len() + self.rx.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use vigil_media::Codec;

    fn params() -> Arc<StreamParams> {
        Arc::new(StreamParams {
            codec: Codec::H264,
            vps: None,
            sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f]),
            pps: Bytes::from_static(&[0x68, 0xce]),
            width: 64,
            height: 64,
            fps: Some(30.0),
        })
    }

    fn au(params: &Arc<StreamParams>, n: i64, key: bool) -> AccessUnit {
        AccessUnit {
            params: params.clone(),
            pts: n * 3000,
            capture_us: n,
            key,
            data: Bytes::from(vec![0, 0, 0, 1, if key { 0x65 } else { 0x41 }]),
        }
    }

    #[tokio::test]
    async fn new_subscriber_starts_on_current_key_frame() {
        let hub = Hub::new("t", 16);
        let p = params();
        hub.publish(au(&p, 0, false)); // before any key frame: not cached
        hub.publish(au(&p, 1, true));
        hub.publish(au(&p, 2, false));
        let mut sub = hub.subscribe();
        hub.publish(au(&p, 3, false));
        let got: Vec<i64> = [
            sub.recv().await.unwrap(),
            sub.recv().await.unwrap(),
            sub.recv().await.unwrap(),
        ]
        .iter()
        .map(|a| a.capture_us)
        .collect();
        assert_eq!(got, vec![1, 2, 3]);
        assert_eq!(hub.params().unwrap().width, 64);
    }

    #[tokio::test]
    async fn subscriber_before_first_key_frame_waits_for_it() {
        let hub = Hub::new("t", 16);
        let p = params();
        let mut sub = hub.subscribe();
        hub.publish(au(&p, 0, false));
        hub.publish(au(&p, 1, true));
        assert_eq!(sub.recv().await.unwrap().capture_us, 1);
    }

    #[tokio::test]
    async fn lagging_subscriber_skips_to_next_key_frame_and_memory_stays_bounded() {
        let hub = Hub::new("t", 8);
        let p = params();
        let mut slow = hub.subscribe();
        let mut fast = hub.subscribe();
        for n in 0..40 {
            hub.publish(au(&p, n, n % 10 == 0));
            // The fast subscriber keeps up and sees every access unit in order.
            assert_eq!(fast.recv().await.unwrap().capture_us, n);
        }
        hub.publish(au(&p, 40, false));
        hub.publish(au(&p, 41, true));
        // The slow one lost most of them, and resumes on a key frame, never a delta.
        let first = slow.recv().await.unwrap();
        assert!(first.key, "resumed on a delta frame {}", first.capture_us);
        assert!(slow.skipped() > 0);
        assert!(slow.pending() <= 8);
    }

    #[tokio::test]
    async fn closed_when_hub_dropped() {
        let hub = Hub::new("t", 4);
        let mut live = hub.subscribe();
        let mut bulk = hub.subscribe_bulk();
        drop(hub);
        for sub in [&mut live, &mut bulk] {
            let end = tokio::time::timeout(std::time::Duration::from_secs(5), sub.recv()).await;
            assert_eq!(end.expect("still open").unwrap_err(), RecvError::Closed);
        }
    }

    #[tokio::test]
    async fn only_live_subscribers_are_counted_as_live_and_only_while_they_live() {
        let hub = Hub::new("t", 8);
        let p = params();
        let mut recorder = hub.subscribe_bulk();
        assert_eq!(hub.live_subscribers(), 0);
        let mut viewer = hub.subscribe();
        let other = hub.subscribe();
        assert_eq!(hub.live_subscribers(), 2);
        drop(other);
        assert_eq!(hub.live_subscribers(), 1);
        // Both kinds get the same access units.
        hub.publish(au(&p, 0, true));
        assert_eq!(recorder.recv().await.unwrap().capture_us, 0);
        assert_eq!(viewer.recv().await.unwrap().capture_us, 0);
        drop(viewer);
        assert_eq!(hub.live_subscribers(), 0);
        // A subscriber outliving its hub handle still decrements safely.
        let late = hub.subscribe();
        let hub2 = hub.clone();
        drop(hub);
        assert_eq!(hub2.live_subscribers(), 1);
        drop(late);
        assert_eq!(hub2.live_subscribers(), 0);
    }
}
