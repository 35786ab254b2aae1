//! The stream hub: one per camera stream, between the source that produces it and every
//! sink that consumes it (RTSP sessions, recorder, live view, snapshots, motion).
//!
//! A hub carries one ordered stream of [`Item`]s: video access units, audio frames (hubs
//! made with [`Hub::with_audio`]), and the source's gaps and discontinuities, in the order
//! they happened. The recorder subscribes once and takes them all with
//! [`Subscriber::recv`]; sinks that want only video (RTSP, live view, motion) call
//! [`Subscriber::recv_video`], which skips the rest.
//!
//! Fan-out never copies frame data: every subscriber receives clones of the same items,
//! whose payloads are reference-counted [`bytes::Bytes`].
//!
//! A new subscriber starts on the current key frame at once: the hub keeps the video
//! access units since the last key frame (the GOP) and hands them to the subscriber first.
//!
//! Memory is bounded: the broadcast channel holds at most `capacity` items. A subscriber
//! that falls further behind does not stall the publisher or the others; it is told it
//! lagged, and skips ahead to the next video key frame so the decoder downstream never
//! sees a broken reference chain. Gaps and discontinuities are not lost with the skipped
//! media: the hub keeps the last [`CONTROL_LOG_LEN`] of them, and a lagging subscriber
//! gets those it missed, in order, before the item it resumes on (see
//! [`Subscriber::recv`] for the one case where that cannot be done).
//!
//! Subscribers are either live ([`Hub::subscribe`]: a viewer, an RTSP client — someone
//! waits for each frame) or bulk ([`Hub::subscribe_bulk`]: the recorder, motion
//! analysis — a frame 50 ms late costs nothing). The source asks
//! [`Hub::live_subscribers`] to decide whether it may trade latency for CPU (the ingest
//! batches its socket reads while nobody watches).

pub mod clock;
mod item;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};
use vigil_media::audio::{AudioFrame, AudioParams};
use vigil_media::{AccessUnit, StreamParams};

pub use item::{Discontinuity, Gap, Item};

/// Upper bound on the GOP cache, so a source that never sends a key frame cannot grow
/// memory without bound (about 10 s at 30 fps).
const MAX_GOP_LEN: usize = 300;

/// Gaps and discontinuities the hub remembers for lagging subscribers. A source reports
/// at most one of each per reconnect or timestamp jump, each followed by a video access
/// unit, so this covers any lag a subscriber survives in practice.
pub const CONTROL_LOG_LEN: usize = 64;

/// A cloneable handle to one stream's hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    tx: broadcast::Sender<Sequenced>,
    state: Mutex<State>,
    /// Its own `Arc`, like `live`: subscribers read it without keeping `tx` alive.
    log: Arc<Mutex<ControlLog>>,
    audio: bool,
    params_tx: watch::Sender<Option<Arc<StreamParams>>>,
    /// The parameters of the latest audio frame: a WebRTC answer must name the audio codec
    /// before the first frame it sends.
    audio_params_tx: watch::Sender<Option<Arc<AudioParams>>>,
    /// Subscribers from [`Hub::subscribe`] still alive (see [`LiveGuard`]). Its own `Arc`:
    /// a subscriber must not keep `tx` alive, or it would never see the stream end.
    live: Arc<AtomicUsize>,
}

#[derive(Default)]
struct State {
    gop: Vec<AccessUnit>,
    /// Video access units published.
    published: u64,
    /// Sequence number of the next item (of any kind).
    next_seq: u64,
}

/// An item with its place in the stream, so a subscriber notices what it missed.
#[derive(Clone)]
struct Sequenced {
    seq: u64,
    item: Item,
}

/// The latest gaps and discontinuities, by sequence number.
#[derive(Default)]
struct ControlLog {
    items: VecDeque<(u64, Item)>,
    /// Sequence number of the newest entry pushed out of the log.
    evicted: Option<u64>,
}

impl ControlLog {
    fn push(&mut self, seq: u64, item: Item) {
        if self.items.len() >= CONTROL_LOG_LEN {
            if let Some((old, _)) = self.items.pop_front() {
                self.evicted = Some(old);
            }
        }
        self.items.push_back((seq, item));
    }

    /// The entries with `from <= seq < to`, and whether some of that range were evicted.
    fn between(&self, from: u64, to: u64) -> (Vec<Item>, bool) {
        let items = self
            .items
            .iter()
            .filter(|(seq, _)| (from..to).contains(seq))
            .map(|(_, item)| item.clone())
            .collect();
        (items, self.evicted.is_some_and(|e| e >= from))
    }
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
    /// Creates a hub named `name` (for logs) whose broadcast holds `capacity` items, for
    /// a stream without audio.
    pub fn new(name: impl Into<String>, capacity: usize) -> Self {
        Self::build(name.into(), capacity, false)
    }

    /// [`Hub::new`] for a stream whose audio frames travel in the hub too: a recorder
    /// gives its files an audio track. Audio frames share the `capacity` with video
    /// (AAC at 48 kHz is about 47 frames a second), so size it for both.
    pub fn with_audio(name: impl Into<String>, capacity: usize) -> Self {
        Self::build(name.into(), capacity, true)
    }

    fn build(name: String, capacity: usize, audio: bool) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        let (params_tx, _) = watch::channel(None);
        let (audio_params_tx, _) = watch::channel(None);
        Hub {
            inner: Arc::new(Inner {
                name,
                tx,
                state: Mutex::new(State::default()),
                log: Arc::default(),
                audio,
                params_tx,
                audio_params_tx,
                live: Arc::new(AtomicUsize::new(0)),
            }),
        }
    }

    /// Whether the stream's audio travels in this hub ([`Hub::with_audio`]).
    pub fn has_audio(&self) -> bool {
        self.inner.audio
    }

    /// The hub's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Publishes a video access unit to every subscriber.
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
        Self::send(&self.inner, &mut state, Item::Video(au));
    }

    /// Publishes an audio frame, after the video access units published before it.
    /// In a hub made with [`Hub::new`] nobody expects audio, so it is dropped.
    pub fn publish_audio(&self, frame: AudioFrame) {
        if !self.inner.audio {
            return;
        }
        self.inner.audio_params_tx.send_if_modified(|p| match p {
            Some(p) if Arc::ptr_eq(p, &frame.params) || **p == *frame.params => false,
            _ => {
                *p = Some(frame.params.clone());
                true
            }
        });
        let mut state = self.lock();
        Self::send(&self.inner, &mut state, Item::Audio(frame));
    }

    /// Publishes the end of an outage: call it before publishing the first access unit
    /// after it, so every subscriber sees the gap where it happened.
    pub fn publish_gap(&self, gap: Gap) {
        let mut state = self.lock();
        Self::send(&self.inner, &mut state, Item::Gap(gap));
    }

    /// Publishes a timestamp jump: call it before publishing the re-based access unit.
    pub fn publish_discontinuity(&self, d: Discontinuity) {
        let mut state = self.lock();
        Self::send(&self.inner, &mut state, Item::Discontinuity(d));
    }

    /// Numbers `item`, logs it if a lagging subscriber must not lose it, and sends it.
    /// Called with the state locked, so numbers follow the order of sending.
    fn send(inner: &Inner, state: &mut State, item: Item) {
        let seq = state.next_seq;
        state.next_seq += 1;
        if item.is_control() {
            let mut log = inner.log.lock().unwrap_or_else(|p| p.into_inner());
            log.push(seq, item.clone());
        }
        // No subscriber is fine: nobody is watching or recording this stream right now.
        let _ = inner.tx.send(Sequenced { seq, item });
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
    /// late (recording, motion analysis: the ingest's read batches); otherwise the same as
    /// [`Hub::subscribe`].
    pub fn subscribe_bulk(&self) -> Subscriber {
        let state = self.lock();
        let rx = self.inner.tx.subscribe();
        Subscriber {
            backlog: state.gop.iter().cloned().map(Item::Video).collect(),
            rx,
            next_seq: state.next_seq,
            log: self.inner.log.clone(),
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

    /// The parameters of the latest audio frame published, if any (always `None` in a hub
    /// made with [`Hub::new`]).
    pub fn audio_params(&self) -> Option<Arc<AudioParams>> {
        self.inner.audio_params_tx.borrow().clone()
    }

    /// A copy of the current GOP (key frame first), e.g. to decode a snapshot.
    pub fn gop(&self) -> Vec<AccessUnit> {
        self.lock().gop.clone()
    }

    /// How many video access units were published so far.
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

/// One consumer of a hub's items.
pub struct Subscriber {
    /// What to hand out before reading the channel again: the GOP at first, the gaps and
    /// discontinuities recovered after a lag.
    backlog: VecDeque<Item>,
    rx: broadcast::Receiver<Sequenced>,
    /// Sequence number of the next item this subscriber should see.
    next_seq: u64,
    log: Arc<Mutex<ControlLog>>,
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
    /// The next item, in the order the source published it.
    ///
    /// After a lag the subscriber skips video up to the next key frame (audio that is
    /// still in the channel is handed out, as a separate audio channel would). The gaps
    /// and discontinuities published while it lagged are handed out first, in order,
    /// from the hub's log. Only if more than [`CONTROL_LOG_LEN`] of them were published
    /// during one lag are the oldest lost (logged as a warning); a recorder then still
    /// sees each outage as the leap in the video's pts, which ends the file and leaves a
    /// gap in the index, with its own reason instead of the source's.
    pub async fn recv(&mut self) -> Result<Item, RecvError> {
        loop {
            if let Some(item) = self.backlog.pop_front() {
                return Ok(item);
            }
            let msg = match self.rx.recv().await {
                Ok(msg) => msg,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(skipped = n, "subscriber lagged; skipping to next key frame");
                    self.skipped += n;
                    self.need_key = true;
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return Err(RecvError::Closed),
            };
            if msg.seq > self.next_seq {
                self.recover(msg.seq);
            }
            self.next_seq = msg.seq + 1;
            match &msg.item {
                Item::Video(au) if self.need_key && !au.key => {
                    self.skipped += 1;
                    continue;
                }
                Item::Video(_) => self.need_key = false,
                _ => {}
            }
            if self.backlog.is_empty() {
                return Ok(msg.item);
            }
            self.backlog.push_back(msg.item);
        }
    }

    /// The next video access unit, skipping audio, gaps and discontinuities: for sinks
    /// that only show or analyse the picture (RTSP, live view, motion).
    pub async fn recv_video(&mut self) -> Result<AccessUnit, RecvError> {
        loop {
            if let Item::Video(au) = self.recv().await? {
                return Ok(au);
            }
        }
    }

    /// Queues the gaps and discontinuities published between the last item seen and
    /// `seq` (the channel dropped them while this subscriber lagged).
    fn recover(&mut self, seq: u64) {
        let (items, lost) = self
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .between(self.next_seq, seq);
        if lost {
            tracing::warn!(
                "subscriber lagged past the hub's log of gaps and discontinuities; \
                 some are lost (the video's pts still shows the outages)"
            );
        }
        self.skipped = self.skipped.saturating_sub(items.len() as u64);
        self.backlog.extend(items);
    }

    /// Items (video and audio) this subscriber never received because it fell behind.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Items waiting for this subscriber (backlog plus channel).
    pub fn pending(&self) -> usize {
        self.backlog.len() + self.rx.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use vigil_media::audio::AudioCodec;
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
            sub.recv_video().await.unwrap(),
            sub.recv_video().await.unwrap(),
            sub.recv_video().await.unwrap(),
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
        assert_eq!(sub.recv_video().await.unwrap().capture_us, 1);
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
            assert_eq!(fast.recv_video().await.unwrap().capture_us, n);
        }
        hub.publish(au(&p, 40, false));
        hub.publish(au(&p, 41, true));
        // The slow one lost most of them, and resumes on a key frame, never a delta.
        let first = slow.recv_video().await.unwrap();
        assert!(first.key, "resumed on a delta frame {}", first.capture_us);
        assert!(slow.skipped() > 0);
        assert!(slow.pending() <= 8);
    }

    fn gap(n: i64) -> Gap {
        Gap {
            start_wall_us: n,
            end_wall_us: n + 1,
            resume_pts: Some(n),
            reason: format!("outage {n}"),
        }
    }

    fn audio(n: i64) -> vigil_media::audio::AudioFrame {
        use vigil_media::audio::{AudioCodec, AudioFrame, AudioParams};
        AudioFrame {
            params: Arc::new(AudioParams {
                codec: AudioCodec::Pcmu,
                sample_rate: 8000,
                channels: 1,
            }),
            pts: n * 160,
            capture_us: n,
            duration: 160,
            data: Bytes::from_static(&[0xff; 160]),
        }
    }

    /// What an item is, for comparing sequences: ("v", capture time) etc.
    fn kind(item: &Item) -> (&'static str, i64) {
        match item {
            Item::Video(au) => ("v", au.capture_us),
            Item::Audio(f) => ("a", f.capture_us),
            Item::Gap(g) => ("gap", g.start_wall_us),
            Item::Discontinuity(d) => ("disc", d.pts),
        }
    }

    #[tokio::test]
    async fn items_come_in_the_order_published_and_video_sinks_see_only_video() {
        let hub = Hub::with_audio("t", 16);
        assert!(hub.has_audio());
        let p = params();
        let mut all = hub.subscribe_bulk();
        let mut video = hub.subscribe();
        assert_eq!(hub.audio_params(), None);
        hub.publish(au(&p, 0, true));
        hub.publish_audio(audio(1));
        // Known from the first frame on (a WebRTC answer names the codec).
        assert_eq!(
            hub.audio_params().map(|a| a.codec.clone()),
            Some(AudioCodec::Pcmu)
        );
        hub.publish_gap(gap(2));
        hub.publish_discontinuity(Discontinuity {
            pts: 3,
            wall_us: 3,
            reason: "jump".into(),
        });
        hub.publish(au(&p, 4, false));
        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(kind(&all.recv().await.unwrap()));
        }
        assert_eq!(
            got,
            vec![("v", 0), ("a", 1), ("gap", 2), ("disc", 3), ("v", 4)]
        );
        assert_eq!(video.recv_video().await.unwrap().capture_us, 0);
        assert_eq!(video.recv_video().await.unwrap().capture_us, 4);
        assert_eq!(hub.published(), 2, "video access units only");
    }

    #[tokio::test]
    async fn a_hub_without_audio_drops_audio_frames() {
        let hub = Hub::new("t", 16);
        assert!(!hub.has_audio());
        let p = params();
        let mut sub = hub.subscribe_bulk();
        hub.publish_audio(audio(0));
        assert_eq!(hub.audio_params(), None);
        hub.publish(au(&p, 1, true));
        assert_eq!(kind(&sub.recv().await.unwrap()), ("v", 1));
    }

    #[tokio::test]
    async fn a_lagging_subscriber_gets_the_gaps_it_missed_before_the_key_frame() {
        let hub = Hub::with_audio("t", 8);
        let p = params();
        let mut slow = hub.subscribe_bulk();
        for n in 0..20 {
            hub.publish(au(&p, n, n == 0));
        }
        hub.publish_gap(gap(100));
        for n in 20..40 {
            hub.publish(au(&p, n, false));
            hub.publish_audio(audio(n));
        }
        hub.publish_discontinuity(Discontinuity {
            pts: 200,
            wall_us: 200,
            reason: "jump".into(),
        });
        for n in 40..50 {
            hub.publish(au(&p, n, n == 45));
        }
        // The channel kept only the last 8 items (video 42..49): the gap and the
        // discontinuity come back from the log, in order, then the next key frame.
        let got: Vec<_> = [
            slow.recv().await.unwrap(),
            slow.recv().await.unwrap(),
            slow.recv().await.unwrap(),
        ]
        .iter()
        .map(kind)
        .collect();
        assert_eq!(got, vec![("gap", 100), ("disc", 200), ("v", 45)]);
        assert!(slow.skipped() > 0);
    }

    #[tokio::test]
    async fn a_lag_longer_than_the_log_keeps_the_newest_gaps() {
        let hub = Hub::new("t", 4);
        let p = params();
        let mut slow = hub.subscribe_bulk();
        let n_gaps = CONTROL_LOG_LEN as i64 + 6;
        for n in 0..n_gaps {
            hub.publish_gap(gap(n));
            hub.publish(au(&p, n, false));
        }
        for n in 0..4 {
            hub.publish(au(&p, 1000 + n, true));
        }
        let mut gaps = Vec::new();
        loop {
            match slow.recv().await.unwrap() {
                Item::Gap(g) => gaps.push(g.start_wall_us),
                Item::Video(au) => {
                    assert!(au.key);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // The oldest 6 were pushed out of the log; the rest arrive in order.
        assert_eq!(gaps, (6..n_gaps).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn closed_when_hub_dropped() {
        let hub = Hub::new("t", 4);
        let mut live = hub.subscribe();
        let mut bulk = hub.subscribe_bulk();
        drop(hub);
        for sub in [&mut live, &mut bulk] {
            let end =
                tokio::time::timeout(std::time::Duration::from_secs(5), sub.recv_video()).await;
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
        assert_eq!(recorder.recv_video().await.unwrap().capture_us, 0);
        assert_eq!(viewer.recv_video().await.unwrap().capture_us, 0);
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
