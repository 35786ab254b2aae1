//! A running camera: capture, encode and publish on dedicated threads.
//!
//! ```text
//!  testsrc / V4L2 raw ──► encode main ──► main hub
//!        └─ downscale ──► [sub thread] encode sub ──► sub hub
//!  file / V4L2 H.264 ───────────────────► main hub (passthrough)
//!        └─ access units ► [sub thread] decode, downscale, encode ──► sub hub
//! ```
//!
//! Encoding is CPU-bound and blocking, so it runs on std threads, never on the tokio
//! runtime. The sub stream has its own thread behind a small bounded queue: a slow sub
//! encoder drops sub frames (raw sources) or waits for the next key frame (passthrough)
//! rather than delaying the main stream.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vigil_hub::Hub;
use vigil_media::AccessUnit;

use crate::clock::{now_us, sleep_until};
use crate::decoder::H264Decoder;
use crate::encoder::{EncoderConfig, H264Encoder};
use crate::file::FileSource;
use crate::frame::I420Frame;
use crate::source::SourceSpec;
use crate::testsrc::TestPattern;
use crate::CameraError;

/// Settings of one output stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamConfig {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Frames per second.
    pub fps: f64,
    /// Target bit rate, bits per second.
    pub bitrate_bps: u32,
    /// Frames from one key frame to the next.
    pub keyint: u32,
}

impl StreamConfig {
    /// The default main stream: 1280x720 at 30 fps, 2 Mbit/s, a key frame every 2 s.
    pub fn main_default() -> Self {
        StreamConfig {
            width: 1280,
            height: 720,
            fps: 30.0,
            bitrate_bps: 2_000_000,
            keyint: 60,
        }
    }

    /// The default sub stream for a main stream: 640x360 at the main frame rate,
    /// 512 kbit/s, the same key-frame interval in seconds.
    pub fn sub_default(main: &StreamConfig) -> Self {
        StreamConfig {
            width: 640,
            height: 360,
            fps: main.fps,
            bitrate_bps: 512_000,
            keyint: main.keyint,
        }
    }

    fn encoder(&self) -> EncoderConfig {
        EncoderConfig {
            width: self.width,
            height: self.height,
            fps: self.fps,
            bitrate_bps: self.bitrate_bps,
            keyint: self.keyint,
        }
    }
}

/// What a camera captures and how it encodes it.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraConfig {
    /// Where pictures come from.
    pub source: SourceSpec,
    /// The main stream. For passthrough sources (files, H.264 devices) only `fps` is used,
    /// as the frame rate of Annex B files that do not state one.
    pub main: StreamConfig,
    /// The optional lower-resolution sub stream (for motion detection and small views).
    pub sub: Option<StreamConfig>,
}

impl Default for CameraConfig {
    fn default() -> Self {
        let main = StreamConfig::main_default();
        CameraConfig {
            source: SourceSpec::TestPattern,
            main,
            sub: Some(StreamConfig::sub_default(&main)),
        }
    }
}

/// Where a camera's threads are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CameraStatus {
    /// Capturing and publishing.
    Running,
    /// Stopped by [`Camera::stop`].
    Stopped,
    /// A thread hit an error and ended; the message says why.
    Failed(String),
}

/// Counters of a running camera.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CameraStats {
    /// Pictures (or passthrough access units) published on the main stream.
    pub main_frames: u64,
    /// Ticks of a paced source that were skipped because capture or encoding fell behind.
    pub frames_skipped: u64,
    /// Pictures encoded for the main stream (0 for passthrough).
    pub main_encoded: u64,
    /// Total time spent encoding the main stream.
    pub main_encode_time: Duration,
    /// Pictures encoded for the sub stream.
    pub sub_encoded: u64,
    /// Total time spent decoding, scaling and encoding the sub stream.
    pub sub_encode_time: Duration,
    /// Sub-stream inputs dropped because the sub encoder fell behind.
    pub sub_dropped: u64,
}

#[derive(Default)]
struct Counters {
    main_frames: AtomicU64,
    frames_skipped: AtomicU64,
    main_encoded: AtomicU64,
    main_encode_ns: AtomicU64,
    sub_encoded: AtomicU64,
    sub_encode_ns: AtomicU64,
    sub_dropped: AtomicU64,
}

pub(crate) struct Shared {
    stop: AtomicBool,
    status: Mutex<CameraStatus>,
    counters: Counters,
}

impl Shared {
    pub(crate) fn fail(&self, what: &str, err: &CameraError) {
        tracing::error!(error = %err, "camera {what} thread failed");
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        *status = CameraStatus::Failed(format!("{what}: {err}"));
        // A dead thread stops the other one too: a half-running camera is harder to notice.
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn add_time(counter: &AtomicU64, since: Instant) {
    let ns = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
    counter.fetch_add(ns, Ordering::Relaxed);
}

/// What the capture thread hands the sub-stream thread.
pub(crate) enum SubInput {
    /// A picture already scaled to the sub size.
    Picture {
        frame: I420Frame,
        pts: i64,
        capture_us: i64,
    },
    /// A passthrough access unit to decode, scale and re-encode.
    Encoded(AccessUnit),
}

/// A camera whose capture and encoding run on their own threads until stopped or dropped.
pub struct Camera {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// The opened source, ready to move into the capture thread.
enum Opened {
    Pattern(TestPattern),
    File(FileSource),
    #[cfg(feature = "v4l2")]
    Device(crate::v4l2::V4l2Capture),
}

impl Camera {
    /// Opens the source and the encoders (so configuration and file errors are returned
    /// here), then starts publishing to `main_hub` and, if `cfg.sub` is set, `sub_hub`.
    pub fn start(
        cfg: CameraConfig,
        main_hub: Hub,
        sub_hub: Option<Hub>,
    ) -> Result<Camera, CameraError> {
        let opened = match &cfg.source {
            SourceSpec::TestPattern => {
                Opened::Pattern(TestPattern::new(cfg.main.width, cfg.main.height)?)
            }
            SourceSpec::TestScene => Opened::Pattern(TestPattern::scene(
                cfg.main.width,
                cfg.main.height,
                crate::testsrc::SceneScript::default(),
            )?),
            SourceSpec::File(path) => Opened::File(FileSource::open(path, cfg.main.fps)?),
            #[cfg(feature = "v4l2")]
            SourceSpec::V4l2(path) => Opened::Device(crate::v4l2::V4l2Capture::open(
                path,
                cfg.main.width,
                cfg.main.height,
                cfg.main.fps,
            )?),
            #[cfg(not(feature = "v4l2"))]
            SourceSpec::V4l2(_) => {
                return Err(CameraError::Device(
                    "this build has no V4L2 support (cargo feature \"v4l2\")".into(),
                ))
            }
        };
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            status: Mutex::new(CameraStatus::Running),
            counters: Counters::default(),
        });
        let mut threads = Vec::new();
        let sub_tx = match (cfg.sub, sub_hub) {
            (Some(sub_cfg), Some(hub)) => {
                let encoder = H264Encoder::new(sub_cfg.encoder())?;
                // Passthrough sources queue access units (each needed to decode the next);
                // raw sources queue at most a couple of pictures.
                let depth = if matches!(opened, Opened::Pattern(_)) {
                    2
                } else {
                    64
                };
                let (tx, rx) = sync_channel(depth);
                let sh = shared.clone();
                threads.push(spawn("vigil-cam-sub", move || {
                    sub_loop(&sh, rx, encoder, sub_cfg, &hub)
                })?);
                Some((tx, sub_cfg))
            }
            (Some(_), None) => {
                return Err(CameraError::InvalidConfig(
                    "a sub stream needs a sub hub".into(),
                ))
            }
            _ => None,
        };
        let sh = shared.clone();
        let main = cfg.main;
        let capture = match opened {
            Opened::Pattern(pattern) => {
                let encoder = H264Encoder::new(main.encoder())?;
                spawn("vigil-cam-main", move || {
                    if let Err(e) = pattern_loop(&sh, pattern, encoder, main, &main_hub, sub_tx) {
                        sh.fail("capture", &e);
                    }
                })
            }
            Opened::File(mut file) => spawn("vigil-cam-main", move || {
                let tx = sub_tx.map(|(tx, _)| tx);
                file.play(&sh.stop, |au| {
                    forward_encoded(&sh, tx.as_ref(), &au);
                    main_hub.publish(au);
                    sh.counters.main_frames.fetch_add(1, Ordering::Relaxed);
                    true
                });
            }),
            #[cfg(feature = "v4l2")]
            Opened::Device(device) => {
                let encoder = H264Encoder::new(main.encoder())?;
                spawn("vigil-cam-main", move || {
                    if let Err(e) = device_loop(&sh, device, encoder, main, &main_hub, sub_tx) {
                        sh.fail("capture", &e);
                    }
                })
            }
        };
        match capture {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                shared.stop.store(true, Ordering::Relaxed);
                for t in threads {
                    let _ = t.join();
                }
                return Err(e);
            }
        }
        Ok(Camera { shared, threads })
    }

    /// Stops capturing and waits for the threads to end.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("camera thread panicked");
            }
        }
        let mut status = self.shared.status.lock().unwrap_or_else(|p| p.into_inner());
        if *status == CameraStatus::Running {
            *status = CameraStatus::Stopped;
        }
    }

    /// Running, stopped, or failed with the error that ended it.
    pub fn status(&self) -> CameraStatus {
        self.shared
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Counters so far.
    pub fn stats(&self) -> CameraStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CameraStats {
            main_frames: get(&c.main_frames),
            frames_skipped: get(&c.frames_skipped),
            main_encoded: get(&c.main_encoded),
            main_encode_time: Duration::from_nanos(get(&c.main_encode_ns)),
            sub_encoded: get(&c.sub_encoded),
            sub_encode_time: Duration::from_nanos(get(&c.sub_encode_ns)),
            sub_dropped: get(&c.sub_dropped),
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, CameraError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map_err(CameraError::Thread)
}

/// Paces the test pattern: tick `k` is due at start + k/fps on the monotonic clock. When
/// a tick is missed the loop jumps to the current one (skipping, not drifting); the
/// burned-in counter still increases by exactly one per emitted frame, so a gap in it
/// downstream means a loss downstream.
fn pattern_loop(
    shared: &Shared,
    mut pattern: TestPattern,
    mut encoder: H264Encoder,
    cfg: StreamConfig,
    hub: &Hub,
    sub: Option<(SyncSender<SubInput>, StreamConfig)>,
) -> Result<(), CameraError> {
    let start = Instant::now();
    let period = Duration::from_secs_f64(1.0 / cfg.fps);
    let mut tick: u64 = 0;
    let mut counter: u32 = 0;
    loop {
        let due = start + period.saturating_mul(u32::try_from(tick).unwrap_or(u32::MAX));
        if !sleep_until(due, &shared.stop) {
            return Ok(());
        }
        let late_ticks = (Instant::now() - due).as_secs_f64() * cfg.fps;
        if late_ticks >= 1.0 {
            let skip = late_ticks.floor() as u64;
            shared
                .counters
                .frames_skipped
                .fetch_add(skip, Ordering::Relaxed);
            tick += skip;
        }
        let pts = (tick as f64 * 90_000.0 / cfg.fps).round() as i64;
        let capture_us = now_us();
        let frame = pattern.render(counter, capture_us);
        publish_raw(
            shared,
            &mut encoder,
            frame,
            pts,
            capture_us,
            hub,
            sub.as_ref(),
        )?;
        counter = counter.wrapping_add(1);
        tick += 1;
    }
}

/// Encodes a raw picture of the main size for the main stream, after handing a
/// downscaled copy to the sub thread (dropped if that thread is behind).
fn publish_raw(
    shared: &Shared,
    encoder: &mut H264Encoder,
    frame: &I420Frame,
    pts: i64,
    capture_us: i64,
    hub: &Hub,
    sub: Option<&(SyncSender<SubInput>, StreamConfig)>,
) -> Result<(), CameraError> {
    if let Some((tx, sub_cfg)) = sub {
        let input = SubInput::Picture {
            frame: frame.scale_to(sub_cfg.width, sub_cfg.height),
            pts,
            capture_us,
        };
        if let Err(TrySendError::Full(_)) = tx.try_send(input) {
            shared.counters.sub_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
    let t0 = Instant::now();
    let au = encoder.encode(frame, pts, capture_us)?;
    add_time(&shared.counters.main_encode_ns, t0);
    if let Some(au) = au {
        shared.counters.main_encoded.fetch_add(1, Ordering::Relaxed);
        shared.counters.main_frames.fetch_add(1, Ordering::Relaxed);
        hub.publish(au);
    }
    Ok(())
}

/// Captures from a V4L2 device: raw pictures are scaled to the main size if needed and
/// encoded; H.264 is passed through. `pts` follows the monotonic clock.
#[cfg(feature = "v4l2")]
fn device_loop(
    shared: &Shared,
    device: crate::v4l2::V4l2Capture,
    mut encoder: H264Encoder,
    cfg: StreamConfig,
    hub: &Hub,
    sub: Option<(SyncSender<SubInput>, StreamConfig)>,
) -> Result<(), CameraError> {
    use crate::v4l2::Captured;
    let start = Instant::now();
    let mut passthrough = crate::passthrough::AnnexbToAu::new(cfg.fps);
    device.run(&shared.stop, |captured| {
        let pts = (start.elapsed().as_secs_f64() * 90_000.0) as i64;
        let capture_us = now_us();
        match captured {
            Captured::H264(annexb) => {
                if let Some(au) = passthrough.convert(annexb, pts, capture_us)? {
                    forward_encoded(shared, sub.as_ref().map(|(tx, _)| tx), &au);
                    hub.publish(au);
                    shared.counters.main_frames.fetch_add(1, Ordering::Relaxed);
                }
            }
            Captured::Picture(frame) => {
                let frame = if (frame.width, frame.height) == (cfg.width, cfg.height) {
                    frame
                } else {
                    frame.scale_to(cfg.width, cfg.height)
                };
                publish_raw(
                    shared,
                    &mut encoder,
                    &frame,
                    pts,
                    capture_us,
                    hub,
                    sub.as_ref(),
                )?;
            }
        }
        Ok(true)
    })
}

/// Hands a passthrough access unit to the sub thread. When its queue is full the access
/// unit is dropped, and the sub thread resynchronises on the next key frame.
pub(crate) fn forward_encoded(shared: &Shared, tx: Option<&SyncSender<SubInput>>, au: &AccessUnit) {
    if let Some(tx) = tx {
        if let Err(TrySendError::Full(_)) = tx.try_send(SubInput::Encoded(au.clone())) {
            shared.counters.sub_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn sub_loop(
    shared: &Shared,
    rx: Receiver<SubInput>,
    mut encoder: H264Encoder,
    cfg: StreamConfig,
    hub: &Hub,
) {
    let mut decoder: Option<H264Decoder> = None;
    let mut scaled = match I420Frame::black(cfg.width, cfg.height) {
        Ok(f) => f,
        Err(e) => return shared.fail("sub", &e),
    };
    let mut need_key = true;
    let mut last_seen_dropped = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let input = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(i) => i,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let t0 = Instant::now();
        let result = match input {
            SubInput::Picture {
                frame,
                pts,
                capture_us,
            } => encoder.encode(&frame, pts, capture_us),
            SubInput::Encoded(au) => {
                // After a drop the reference chain is broken: wait for a key frame.
                let dropped = shared.counters.sub_dropped.load(Ordering::Relaxed);
                if dropped != last_seen_dropped {
                    last_seen_dropped = dropped;
                    need_key = true;
                }
                if need_key && !au.key {
                    continue;
                }
                need_key = false;
                let dec = match &mut decoder {
                    Some(d) => d,
                    None => match H264Decoder::new() {
                        Ok(d) => decoder.insert(d),
                        Err(e) => return shared.fail("sub", &e),
                    },
                };
                match dec.decode(&au) {
                    Ok(Some(pic)) => {
                        pic.scale_into(&mut scaled);
                        encoder.encode(&scaled, au.pts, au.capture_us)
                    }
                    Ok(None) => Ok(None),
                    // A damaged picture in a file or from a device: skip to the next key frame.
                    Err(e) => {
                        tracing::warn!(error = %e, "sub stream: cannot decode; waiting for a key frame");
                        need_key = true;
                        Ok(None)
                    }
                }
            }
        };
        match result {
            Ok(Some(au)) => {
                add_time(&shared.counters.sub_encode_ns, t0);
                shared.counters.sub_encoded.fetch_add(1, Ordering::Relaxed);
                hub.publish(au);
            }
            Ok(None) => {}
            Err(e) => return shared.fail("sub", &e),
        }
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
