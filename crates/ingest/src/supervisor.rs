//! The tokio task of one ingest: connect, stream into the hub, notice stalls, back off,
//! reconnect — and tell the world as it goes: the status on a `watch`, gaps and
//! discontinuities into the hub, in order with the access units they precede.
//!
//! The decisions live in sans-IO pieces ([`ReconnectPolicy`], [`Timeline`], [`Meter`]);
//! this file only moves data between them, retina, the hub and the channels.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use retina::client::{Demuxed, SessionGroup};
use retina::codec::{CodecItem, ParametersRef, VideoFrame};
use tokio::sync::watch;
use vigil_hub::clock::Clock;
use vigil_hub::{Discontinuity, Gap, Hub};
use vigil_media::time::VIDEO_HZ;
use vigil_media::{AccessUnit, Codec, StreamParams};

use super::backoff::{ComeBack, Failure, ReconnectPolicy};
use super::batching::{self, ReadBatching};
use super::config::{IngestConfig, Transport};
use super::probe;
use super::session::{self, Connected, IngestError};
use super::socket;
use super::status::{IngestState, IngestStatus, Meter};
use super::timeline::{Jump, Timeline};
use vigil_media::audio::{AudioCodec, AudioFrame, AudioParams};

/// Upper bound of one liveness probe (connect, `OPTIONS`, status line). Generous for a
/// camera on the LAN; one that answers slower is simply left to the back-off.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// On stop, what is queued in the socket is read until it has been quiet this long
/// (queued bytes come back within microseconds; the camera's next frame takes ~33 ms).
const DRAIN_QUIET: Duration = Duration::from_millis(10);
/// Upper bound of that drain.
const DRAIN_MAX: Duration = Duration::from_millis(100);

/// Where a supervisor reports its status (the media goes into the hub).
pub(crate) struct Outputs {
    pub status: watch::Sender<IngestStatus>,
}

pub(crate) struct Supervisor {
    cfg: IngestConfig,
    hub: Hub,
    out: Outputs,
    stop: watch::Receiver<bool>,
    /// Every "now" and every wait of the supervision (tests simulate it).
    clock: Arc<dyn Clock>,
    policy: ReconnectPolicy,
    group: Arc<SessionGroup>,
    /// Origin of the monotonic µs fed to the timelines. The host's, not `clock`'s:
    /// retina stamps each packet's reception with a `std::time::Instant`.
    epoch: Instant,
    video_tl: Timeline,
    audio_tl: Option<Timeline>,
    params: Option<Arc<StreamParams>>,
    audio_params: Option<Arc<AudioParams>>,
    meter: Meter,
    status: IngestStatus,
    /// An outage in progress: wall time of the last access unit before it, and why.
    open_gap: Option<(i64, String)>,
}

/// How a session ended.
enum End {
    Stopped,
    Failed {
        error: IngestError,
        /// How long the session published frames; `None` if it published none.
        streamed: Option<Duration>,
    },
}

/// Per-session state.
struct Live {
    video: usize,
    audio: Option<(usize, AudioCodec)>,
    waiting_for_key: bool,
    skipped: u64,
    /// On the supervisor's monotonic clock.
    first_frame: Option<Duration>,
    last_frame: Option<Duration>,
}

impl Supervisor {
    pub(crate) fn new(
        cfg: IngestConfig,
        hub: Hub,
        out: Outputs,
        stop: watch::Receiver<bool>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let policy = ReconnectPolicy::new(cfg.backoff, cfg.jitter_seed);
        let group = Arc::new(SessionGroup::default().named(cfg.name.clone()));
        Supervisor {
            cfg,
            hub,
            out,
            stop,
            clock,
            policy,
            group,
            epoch: Instant::now(),
            video_tl: Timeline::new(VIDEO_HZ),
            audio_tl: None,
            params: None,
            audio_params: None,
            meter: Meter::new(),
            status: IngestStatus::default(),
            open_gap: None,
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    fn set_state(&mut self, state: IngestState) {
        self.status.state = state;
        self.out.status.send_replace(self.status.clone());
    }

    pub(crate) async fn run(mut self) {
        let name = self.cfg.name.clone();
        tracing::info!(stream = %name, url = %self.cfg.redacted_url(), transport = ?self.cfg.transport, "ingest starting");
        let mut attempts: u64 = 0;
        while !self.stopping() {
            if attempts > 0 {
                self.status.reconnects += 1;
            }
            attempts += 1;
            self.set_state(IngestState::Connecting);
            let connected = tokio::select! {
                _ = self.stop.changed() => break,
                r = session::connect(&self.cfg, &self.group) => r,
            };
            let (error, streamed) = match connected {
                Ok(conn) => match self.stream(conn).await {
                    End::Stopped => break,
                    End::Failed { error, streamed } => (error, streamed),
                },
                Err(error) => (error, None),
            };
            let reason = error.to_string();
            if self.open_gap.is_none() {
                if let Some(last) = self.status.last_frame_wall_us {
                    self.open_gap = Some((last, reason.clone()));
                }
            }
            self.meter.reset_window(&mut self.status);
            let failure = error.failure();
            let delay = self.policy.on_failure(failure, streamed);
            // Read before the status announces the back-off's end, so that the end shown
            // and the end waited for are the same instant, whenever an observer (or a
            // simulated clock) moves on after seeing it.
            let until = self.clock.monotonic().saturating_add(delay);
            if failure == Failure::Permanent {
                tracing::error!(stream = %name, error = %reason, retry_in = ?delay, "ingest failed");
                self.set_state(IngestState::Failed(reason));
            } else {
                tracing::warn!(stream = %name, error = %reason, retry_in = ?delay, "ingest session ended; backing off");
                let until_wall_us = self
                    .clock
                    .wall_us()
                    .saturating_add(delay.as_micros() as i64);
                self.set_state(IngestState::Backoff {
                    until_wall_us,
                    reason,
                });
            }
            let probe = match failure {
                Failure::Transient => self.cfg.port_probe,
                Failure::Permanent => None,
            };
            if self.back_off(until, probe).await {
                break;
            }
        }
        if let Some((start_wall_us, reason)) = self.open_gap.take() {
            self.hub.publish_gap(Gap {
                start_wall_us,
                end_wall_us: self.clock.wall_us(),
                resume_pts: None,
                reason,
            });
        }
        self.set_state(IngestState::Stopped);
        tracing::info!(stream = %name, "ingest stopped");
    }

    /// Waits until `until` (on the monotonic clock), or less if the camera was not
    /// answering RTSP when the back-off started (port closed, or a hung camera that accepts
    /// connections but says nothing) and answers an `OPTIONS` probe (sent every `probe`)
    /// before it ends: a camera that is back is recorded again within one probe interval
    /// plus one GOP, whatever the back-off had grown to. Returns true if the ingest was
    /// stopped meanwhile.
    async fn back_off(&mut self, until: Duration, probe: Option<Duration>) -> bool {
        let clock = self.clock.clone();
        let target = self.cfg.url.host_str().map(|h| {
            (
                h.trim_matches(['[', ']']).to_owned(),
                self.cfg.url.port().unwrap_or(554),
            )
        });
        let url = self.cfg.redacted_url();
        let probe_until = |until: Duration| {
            // A probe never delays the attempt the back-off has planned.
            PROBE_TIMEOUT.min(until.saturating_sub(clock.monotonic()))
        };
        let probe = match (probe, target) {
            (Some(every), Some((host, port))) => {
                let at_start = probe::probe(&host, port, &url, probe_until(until)).await;
                let come_back = ComeBack::new(at_start);
                tracing::debug!(stream = %self.cfg.name, ?at_start, "camera liveness at the start of the back-off");
                // A camera that answers while its sessions fail is left to the back-off.
                come_back
                    .probing()
                    .then_some((every, host, port, come_back))
            }
            _ => None,
        };
        let mut probe = probe;
        loop {
            let next = match &probe {
                Some((p, ..)) => until.min(clock.monotonic() + *p),
                None => until,
            };
            tokio::select! {
                _ = self.stop.changed() => return true,
                _ = clock.sleep_until(next) => {}
            }
            if clock.monotonic() >= until {
                return false;
            }
            if let Some((_, host, port, come_back)) = &mut probe {
                let seen = tokio::select! {
                    _ = self.stop.changed() => return true,
                    seen = probe::probe(host, *port, &url, probe_until(until)) => seen,
                };
                if come_back.on_probe(seen) {
                    tracing::info!(stream = %self.cfg.name, "camera answers RTSP again; reconnecting now");
                    return false;
                }
            }
        }
    }

    /// Runs one playing session until it fails or the ingest is stopped.
    async fn stream(&mut self, conn: Connected) -> End {
        let Connected {
            mut demuxed,
            video,
            audio,
        } = conn;
        let audio = audio.and_then(|i| {
            let s = demuxed.streams().get(i)?;
            crate::audio::codec_of_encoding_name(s.encoding_name()).map(|c| (i, c))
        });
        self.video_tl.new_session();
        // A new socket reads as data comes until a second of the stream was measured.
        self.status.read_batch_bytes = 0;
        if let Some(tl) = self.audio_tl.as_mut() {
            tl.new_session();
        }
        let mut live = Live {
            video,
            audio,
            waiting_for_key: true,
            skipped: 0,
            first_frame: None,
            last_frame: None,
        };
        let stall = self.cfg.stall_timeout;
        let clock = self.clock.clone();
        let now = clock.monotonic();
        let mut deadline = now + stall;
        let mut last_video = now;
        let mut batching = ReadBatching::new(match self.cfg.transport {
            Transport::Tcp => self.cfg.read_batch,
            // The RTSP socket carries only keep-alive replies then: never hold them back.
            Transport::Udp => Duration::ZERO,
        });
        let error = loop {
            let idle_at = batching.idle_after().map(|d| last_video + d);
            let wake = idle_at.map_or(deadline, |i| i.min(deadline));
            // Biased: a frame already received wins over a stall deadline that passed
            // meanwhile (a starved runtime must not declare a live camera dead).
            let item = tokio::select! {
                biased;
                _ = self.stop.changed() => {
                    self.drain(&mut demuxed, &mut live, &mut batching).await;
                    return End::Stopped;
                }
                r = demuxed.next() => Ok(r),
                _ = clock.sleep_until(wake) => Err(()),
            };
            let item = match item {
                Err(()) if clock.monotonic() < deadline => {
                    // Quiet for a while with batching on: read whatever is queued now.
                    if let Some(mark) = batching.on_idle() {
                        self.set_mark(&demuxed, &mut batching, mark);
                    }
                    continue;
                }
                Err(()) => break IngestError::Stalled(stall),
                Ok(None) => break IngestError::Closed,
                Ok(Some(Err(e))) => break IngestError::Rtsp(e),
                Ok(Some(Ok(item))) => item,
            };
            if let CodecItem::VideoFrame(f) = &item {
                if f.stream_id() == live.video {
                    let now = clock.monotonic();
                    deadline = now + stall;
                    last_video = now;
                    let watched = self.hub.live_subscribers() > 0;
                    if let Some(mark) = batching.on_frame(now, f.data().len(), watched) {
                        self.set_mark(&demuxed, &mut batching, mark);
                    }
                }
            }
            if let Err(e) = self.on_item(&mut live, &demuxed, item) {
                break e;
            }
        };
        let streamed = live
            .first_frame
            .zip(live.last_frame)
            .map(|(a, b)| b.saturating_sub(a));
        End::Failed { error, streamed }
    }

    /// Publishes one item of the session (video of our stream, audio if recorded).
    fn on_item(
        &mut self,
        live: &mut Live,
        demuxed: &Demuxed,
        item: CodecItem,
    ) -> Result<(), IngestError> {
        match item {
            CodecItem::VideoFrame(f) if f.stream_id() == live.video => {
                let params = demuxed
                    .streams()
                    .get(live.video)
                    .and_then(|s| s.parameters());
                self.on_video(live, f, params)
            }
            CodecItem::AudioFrame(f) => {
                let Some((i, codec)) = live.audio.as_ref().filter(|(i, _)| *i == f.stream_id())
                else {
                    return Ok(());
                };
                let params = demuxed.streams().get(*i).and_then(|s| s.parameters());
                let codec = codec.clone();
                self.on_audio(&codec, f, params);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Sets the socket's low-water mark; if the socket refuses, batching is off for the
    /// rest of the session (it only ever saves CPU).
    fn set_mark(&mut self, demuxed: &Demuxed, batching: &mut ReadBatching, mark: usize) {
        let Some(fd) = demuxed.rtsp_socket() else {
            return;
        };
        match socket::set_recv_low_water(fd, mark) {
            Ok(()) => {
                tracing::trace!(stream = %self.cfg.name, bytes = mark, "socket read batch");
                self.status.read_batch_bytes = if mark > batching::OFF { mark as u64 } else { 0 };
                self.out.status.send_replace(self.status.clone());
            }
            Err(e) => {
                tracing::warn!(stream = %self.cfg.name, error = %e, "cannot batch socket reads; reading as data comes");
                *batching = ReadBatching::new(Duration::ZERO);
            }
        }
    }

    /// On stop with batching on: drops the mark and publishes what already reached the
    /// host (until the socket has been quiet for [`DRAIN_QUIET`], at most [`DRAIN_MAX`]),
    /// so that a stop loses no more than it would without batching.
    async fn drain(&mut self, demuxed: &mut Demuxed, live: &mut Live, batching: &mut ReadBatching) {
        let Some(mark) = batching.on_idle() else {
            return;
        };
        self.set_mark(demuxed, batching, mark);
        let until = tokio::time::Instant::now() + DRAIN_MAX;
        while let Ok(Ok(Some(Ok(item)))) =
            tokio::time::timeout_at(until, tokio::time::timeout(DRAIN_QUIET, demuxed.next())).await
        {
            if self.on_item(live, demuxed, item).is_err() {
                break;
            }
        }
    }

    fn on_video(
        &mut self,
        live: &mut Live,
        f: VideoFrame,
        params: Option<ParametersRef<'_>>,
    ) -> Result<(), IngestError> {
        if f.loss() > 0 {
            self.status.lost_packets += u64::from(f.loss());
            tracing::debug!(stream = %self.cfg.name, lost = f.loss(), "RTP packets lost before this frame");
        }
        if f.has_new_parameters() || self.params.is_none() {
            if let Some(ParametersRef::Video(vp)) = params {
                self.update_params(session::video_params(vp)?);
            }
        }
        let Some(params) = self.params.clone() else {
            // Nothing decodable before the first SPS/PPS.
            live.skipped += 1;
            return Ok(());
        };
        // retina flags only IDR pictures; an H.265 CRA or BLA picture is a key frame too.
        let key = match params.codec {
            Codec::H264 => f.is_random_access_point(),
            Codec::H265 => vigil_media::h265::access_unit_is_irap(f.data()),
        };
        if live.waiting_for_key {
            if !key {
                // After a (re)connect a subscriber must not get frames that reference
                // pictures of the previous session.
                live.skipped += 1;
                return Ok(());
            }
            live.waiting_for_key = false;
            if live.skipped > 0 {
                tracing::debug!(stream = %self.cfg.name, skipped = live.skipped, "frames before the first key frame dropped");
            }
        }
        let received = f.end_ctx().received();
        let mono_us = received.saturating_duration_since(self.epoch).as_micros() as i64;
        let capture_us = wall_us(SystemTime::from(f.end_ctx().received_wall()));
        let ts = f.timestamp();
        let (pts, jump) = self
            .video_tl
            .map(ts.elapsed(), ts.clock_rate().get(), mono_us);
        if let Some(jump) = jump {
            let reason = describe_jump(jump, VIDEO_HZ);
            tracing::warn!(stream = %self.cfg.name, %reason, pts, "camera timestamps jumped; continuing after the previous frame");
            self.hub.publish_discontinuity(Discontinuity {
                pts,
                wall_us: capture_us,
                reason,
            });
        }
        if let Some((start_wall_us, reason)) = self.open_gap.take() {
            tracing::info!(stream = %self.cfg.name, gap_ms = (capture_us - start_wall_us) / 1000, "stream resumed");
            self.hub.publish_gap(Gap {
                start_wall_us,
                end_wall_us: capture_us,
                resume_pts: Some(pts),
                reason,
            });
        }
        let data = Bytes::from(f.into_data());
        let now = self.clock.monotonic();
        live.first_frame.get_or_insert(now);
        live.last_frame = Some(now);
        let publish = self
            .meter
            .on_frame(&mut self.status, now, data.len(), capture_us);
        self.hub.publish(AccessUnit {
            params,
            pts,
            capture_us,
            key,
            data,
        });
        if self.status.state != IngestState::Streaming {
            if self.status.state == IngestState::Connecting {
                tracing::info!(stream = %self.cfg.name, "streaming");
            }
            self.set_state(IngestState::Streaming);
        } else if publish {
            self.out.status.send_replace(self.status.clone());
        }
        Ok(())
    }

    /// Keeps the `Arc` while the parameters are unchanged, so consumers can compare by
    /// pointer; logs a change (a recorder starts a new file on it).
    fn update_params(&mut self, new: StreamParams) {
        match &self.params {
            Some(old) if **old == new => {}
            Some(old) => {
                tracing::info!(
                    stream = %self.cfg.name,
                    from = %format!("{}x{}", old.width, old.height),
                    to = %format!("{}x{}", new.width, new.height),
                    "video parameters changed"
                );
                self.params = Some(Arc::new(new));
            }
            None => {
                tracing::info!(stream = %self.cfg.name, width = new.width, height = new.height, fps = ?new.fps, "video parameters");
                self.params = Some(Arc::new(new));
            }
        }
    }

    fn on_audio(
        &mut self,
        codec: &AudioCodec,
        f: retina::codec::AudioFrame,
        params: Option<ParametersRef<'_>>,
    ) {
        let fresh = params.and_then(|p| session::audio_params(codec, p));
        if let Some(fresh) = fresh {
            let changed = self.audio_params.as_deref() != Some(&fresh);
            if changed {
                tracing::info!(stream = %self.cfg.name, codec = ?fresh.codec, rate = fresh.sample_rate, channels = fresh.channels, "audio parameters");
                if self.audio_params.as_ref().map(|p| p.sample_rate) != Some(fresh.sample_rate) {
                    self.audio_tl = Some(Timeline::new(fresh.sample_rate));
                }
                self.audio_params = Some(Arc::new(fresh));
            }
        }
        let (Some(params), Some(tl)) = (self.audio_params.clone(), self.audio_tl.as_mut()) else {
            return;
        };
        let ctx = f.ctx();
        let mono_us = ctx
            .received()
            .saturating_duration_since(self.epoch)
            .as_micros() as i64;
        let capture_us = wall_us(SystemTime::from(ctx.received_wall()));
        let ts = f.timestamp();
        let (pts, jump) = tl.map(ts.elapsed(), ts.clock_rate().get(), mono_us);
        if let Some(jump) = jump {
            tracing::debug!(stream = %self.cfg.name, reason = %describe_jump(jump, params.sample_rate), "audio timestamps jumped");
        }
        let frame = AudioFrame {
            pts,
            capture_us,
            duration: f.frame_length().get(),
            data: Bytes::copy_from_slice(f.data()),
            params,
        };
        // In order with the video; a hub made without audio drops it.
        self.hub.publish_audio(frame);
    }
}

fn describe_jump(jump: Jump, rate: u32) -> String {
    let secs = |t: i64| t as f64 / f64::from(rate.max(1));
    match jump {
        Jump::Backwards { by } => format!("timestamp went back {:.3} s", secs(by)),
        Jump::Forward { by } => format!("timestamp leapt {:.3} s ahead of the clock", secs(by)),
    }
}

/// µs since the Unix epoch (negative before it).
pub(crate) fn wall_us(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |v| -v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ingest;
    use vigil_hub::clock::SimClock;

    /// 2024-01-01T00:00:00Z.
    const T0: i64 = 1_704_067_200_000_000;

    /// An RTSP URL on a local port nothing listens on: every connect is refused at once.
    fn refused_url() -> url::Url {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        url::Url::parse(&format!("rtsp://127.0.0.1:{port}/main")).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits (real time, bounded) for a status `pred` accepts.
    async fn wait_for(
        status: &mut watch::Receiver<IngestStatus>,
        pred: impl Fn(&IngestStatus) -> bool,
    ) -> IngestStatus {
        let found = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let st = status.borrow_and_update().clone();
                if pred(&st) {
                    return st;
                }
                if status.changed().await.is_err() {
                    return st;
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("status never matched: {:?}", status.borrow()))
    }

    #[tokio::test]
    async fn back_off_follows_its_jittered_schedule_on_the_injected_clock() {
        let clock = SimClock::new(T0);
        let mut cfg = IngestConfig::new("t/main", refused_url());
        // No liveness probe: the waits are the back-off alone.
        cfg.port_probe = None;
        cfg.jitter_seed = Some(7);
        let hub = Hub::new("t/main", 8);
        let ingest = Ingest::spawn_with_clock(cfg, hub, Arc::new(clock.clone()));
        let mut status = ingest.status();
        let mut delays = Vec::new();
        for attempt in 0..7u64 {
            let st = wait_for(&mut status, |s| {
                s.reconnects == attempt && matches!(s.state, IngestState::Backoff { .. })
            })
            .await;
            let IngestState::Backoff { until_wall_us, .. } = st.state else {
                unreachable!()
            };
            let delay = Duration::from_micros((until_wall_us - clock.wall_us()) as u64);
            delays.push(delay);
            // Real time passing does not end a back-off: only the ingest's clock does.
            tokio::time::sleep(Duration::from_millis(30)).await;
            assert_eq!(status.borrow().reconnects, attempt, "reconnected early");
            // The status shows whole µs; the back-off waits the exact delay.
            clock.advance(delay + Duration::from_micros(1));
        }
        // 0.5 s doubling up to the 30 s cap, each shortened by at most half (jitter 0.5).
        let bases = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0];
        for (d, base) in delays.iter().zip(bases) {
            let d = d.as_secs_f64();
            assert!(d <= base && d >= base / 2.0, "{delays:?}");
        }
        ingest.stop().await;
    }

    #[tokio::test]
    async fn a_stop_ends_a_back_off_at_once_and_no_gap_is_invented() {
        let clock = SimClock::new(T0);
        let mut cfg = IngestConfig::new("t/main", refused_url());
        cfg.port_probe = None;
        let hub = Hub::new("t/main", 8);
        let mut items = hub.subscribe_bulk();
        let ingest = Ingest::spawn_with_clock(cfg, hub.clone(), Arc::new(clock.clone()));
        let mut status = ingest.status();
        wait_for(&mut status, |s| {
            matches!(s.state, IngestState::Backoff { .. })
        })
        .await;
        // The simulated clock never moves: the stop must not wait for the back-off.
        tokio::time::timeout(Duration::from_secs(2), ingest.stop())
            .await
            .unwrap_or_else(|_| panic!("stop waited for the back-off"));
        assert_eq!(status.borrow().state, IngestState::Stopped);
        // Nothing was ever streamed, so there is no outage to report.
        drop(hub);
        assert!(items.recv().await.is_err());
    }
}
