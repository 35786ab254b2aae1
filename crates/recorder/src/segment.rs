//! The segmenter: sans-IO decisions of where fragments and files begin and end.
//!
//! Feed access units of one stream in order with [`Segmenter::push`]; it returns
//! [`FileOp`]s for the writer to carry out. Rules (see `docs/recording.md`):
//!
//! - A file starts on a key frame. Access units before the first key frame (or after a
//!   discontinuity, until the next one) cannot be decoded and are dropped and counted.
//! - Decode times are contiguous: a sample lasts until the next one starts
//!   (`duration[i] = pts[i+1] - pts[i]`), so a fragment is emitted only when the access
//!   unit *after* its last sample arrives, and each fragment starts where the previous
//!   ended. Files start at decode time 0.
//! - A fragment is cut before a key frame once it is at least half of `max_fragment_90k`
//!   long, and before a sample that would make it longer than `max_fragment_90k` (1 s).
//!   With GOPs of at most 0.5 s or exactly 1 s, every fragment starts on a key frame.
//! - A file ends at the first key frame after `file_duration_90k`, when the codec
//!   parameters change, and when the timestamp goes backwards or jumps forward by more
//!   than `max_jump_90k` (its last sample then gets the previous sample's duration).
//! - A file also ends at the first key frame at or after a discontinuity the ingest
//!   reported ([`Segmenter::mark_discontinuity`]): the camera's clock jumped and the ingest
//!   re-based it, so the timeline stays contiguous and no decodable frame is dropped.

use std::sync::Arc;

use bytes::Bytes;
use vigil_media::fmp4::{self, Sample, Track, TrackRun, VideoTrack};
use vigil_media::{AccessUnit, StreamParams};

use crate::db::AudioRun;
use crate::segment_audio::{AudioMux, VideoRef};
use vigil_media::audio::AudioFrame;

/// The track id of video in recording files.
pub const VIDEO_TRACK_ID: u32 = 1;
/// The media timescale of video: RTP's 90 kHz.
pub const TIMESCALE: u32 = 90_000;

/// Limits of the segmenter, in 90 kHz ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// A new file at the first key frame after this much media time (default 5 min).
    pub file_duration_90k: u64,
    /// Longest fragment (default 1 s): bounds what a crash can lose.
    pub max_fragment_90k: u64,
    /// A forward timestamp jump larger than this ends the file (default 5 s).
    pub max_jump_90k: u64,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self {
            file_duration_90k: 300 * 90_000,
            max_fragment_90k: 90_000,
            max_jump_90k: 5 * 90_000,
        }
    }
}

/// Why a file ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// It reached the configured duration.
    Rotation,
    /// The codec parameters (SPS/PPS, resolution) changed.
    ParamsChanged,
    /// The timestamp went backwards.
    TimeBackwards,
    /// The timestamp jumped forward by more than the limit.
    TimeJump,
    /// The ingest reported that the camera's timestamps jumped (and re-based them).
    Discontinuity,
    /// The stream ended (or the recorder is stopping).
    StreamEnd,
}

impl EndReason {
    /// Whether the next file continues this one's timeline without a gap.
    pub fn is_continuous(self) -> bool {
        matches!(
            self,
            EndReason::Rotation | EndReason::ParamsChanged | EndReason::Discontinuity
        )
    }

    /// A short label for logs and the `gap` table.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Rotation => "rotation",
            EndReason::ParamsChanged => "codec parameters changed",
            EndReason::TimeBackwards => "timestamp went backwards",
            EndReason::TimeJump => "timestamp jumped forward",
            EndReason::Discontinuity => "camera timestamps jumped",
            EndReason::StreamEnd => "stream ended",
        }
    }
}

/// A complete fragment ready to be appended.
#[derive(Clone, Debug)]
pub struct FragmentOut {
    /// `mfhd` sequence number, 1-based within the file.
    pub seq: u32,
    /// Decode time of the first sample (`tfdt`).
    pub base_decode_time: u64,
    /// The sample table.
    pub samples: Vec<Sample>,
    /// `moof` + `mdat` header.
    pub header: Vec<u8>,
    /// The audio samples (track 2), if the file has audio and some fall in this fragment.
    pub audio: Option<AudioRun>,
    /// The samples' bytes, to append after `header` in order: video, then audio.
    pub data: Vec<Bytes>,
}

impl FragmentOut {
    /// Sum of the sample durations.
    pub fn duration_90k(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.duration)).sum()
    }

    /// Total length: header plus sample bytes.
    pub fn len(&self) -> u64 {
        self.header.len() as u64 + self.data.iter().map(|d| d.len() as u64).sum::<u64>()
    }

    /// Whether it has no samples (never emitted).
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// A file operation the segmenter asks of the writer (start a file, append a fragment, end
/// the file). Not an "event": in Vigil that word means something seen in front of a camera.
#[derive(Clone, Debug)]
pub enum FileOp {
    /// Create a new file and write its init segment.
    StartFile {
        /// Codec parameters of the file.
        params: Arc<StreamParams>,
        /// `ftyp` + `moov`.
        init: Vec<u8>,
        /// Capture wall clock of the first access unit (µs since the epoch).
        capture_us: i64,
        /// `Some(reason)` if it continues the previous file's timeline without a gap.
        continues: Option<EndReason>,
    },
    /// Append a fragment to the open file, fsync, index it.
    Fragment(FragmentOut),
    /// Close the open file.
    EndFile(EndReason),
}

struct OpenFile {
    params: Arc<StreamParams>,
    base_pts: i64,
    next_seq: u32,
}

/// The segmenter of one stream. See the module documentation.
pub struct Segmenter {
    config: SegmenterConfig,
    file: Option<OpenFile>,
    /// Access units not yet written; never empty while a file is open.
    pending: Vec<AccessUnit>,
    /// Duration of the last sample whose duration is known (for a file's final sample).
    last_delta: u32,
    dropped: u64,
    /// pts of a reported discontinuity: the first key frame at or after it starts a file.
    cut_at: Option<i64>,
    /// Audio of the stream (see `segment_audio.rs`).
    audio: AudioMux,
    /// Access units held while a fresh recording waits for the audio parameters.
    held: Vec<AccessUnit>,
}

impl Segmenter {
    /// A segmenter waiting for a key frame.
    pub fn new(config: SegmenterConfig) -> Self {
        Self {
            config,
            file: None,
            pending: Vec::new(),
            last_delta: 3000,
            dropped: 0,
            cut_at: None,
            audio: AudioMux::default(),
            held: Vec::new(),
        }
    }

    /// Records the stream's audio too: a fresh recording waits up to one fragment for the
    /// first audio frame, so that its first file has an audio track.
    pub fn expect_audio(&mut self, expect: bool) {
        self.audio.expect = expect;
    }

    /// Audio frames dropped (before the first key frame, outside the file, going back in
    /// time, or with parameters other than the open file's).
    pub fn audio_dropped(&self) -> u64 {
        self.audio.dropped
    }

    /// Feeds the next audio frame of the stream; appends what to do to `out` (a recording
    /// that waited for audio starts now).
    pub fn push_audio(&mut self, frame: AudioFrame, out: &mut Vec<FileOp>) {
        self.audio.observe(&frame);
        if self.file.is_none() && !self.held.is_empty() {
            self.release(out);
        }
        self.place_audio(frame);
    }

    fn place_audio(&mut self, frame: AudioFrame) {
        let (Some(file), Some(last)) = (&self.file, self.pending.last()) else {
            self.audio.dropped += 1;
            return;
        };
        let video = VideoRef {
            t90k: last.pts.saturating_sub(file.base_pts),
            capture_us: last.capture_us,
        };
        self.audio.place(frame, video);
    }

    /// Starts a file now, or holds `au` while a fresh recording waits for audio.
    fn start_or_hold(
        &mut self,
        au: AccessUnit,
        continues: Option<EndReason>,
        out: &mut Vec<FileOp>,
    ) {
        if continues.is_some() || !self.audio.waiting() {
            self.start(au, continues, out);
            return;
        }
        let Some(first) = self.held.first() else {
            match au.key {
                true => self.held.push(au),
                false => self.dropped += 1,
            }
            return;
        };
        let span = au.pts.saturating_sub(first.pts);
        if span < 0 || span.unsigned_abs() >= self.config.max_fragment_90k {
            // No audio within a fragment's time: the camera sends none.
            self.audio.gave_up = true;
            self.release(out);
            self.push(au, out);
        } else {
            self.held.push(au);
        }
    }

    /// Records the held access units.
    fn release(&mut self, out: &mut Vec<FileOp>) {
        for au in std::mem::take(&mut self.held) {
            self.push(au, out);
        }
    }

    /// The ingest reports a discontinuity at `pts` (the camera's timestamps jumped there and
    /// were re-based to follow the previous frame). The open file ends before the first key
    /// frame at or after `pts` — including one already received, if the report comes late —
    /// and that key frame starts a new file continuing the timeline.
    pub fn mark_discontinuity(&mut self, pts: i64) {
        if self.file.is_some() {
            self.cut_at = Some(pts);
        }
    }

    /// Access units dropped because no key frame preceded them.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether a file is open.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Feeds the next access unit; appends what to do to `out`.
    pub fn push(&mut self, au: AccessUnit, out: &mut Vec<FileOp>) {
        let Some(file) = &self.file else {
            self.start_or_hold(au, None, out);
            return;
        };
        let Some(last_pts) = self.pending.last().map(|l| l.pts) else {
            // Unreachable by construction; recover by starting over.
            self.file = None;
            self.start(au, None, out);
            return;
        };
        let delta = au.pts.saturating_sub(last_pts);
        if delta <= 0 || delta.unsigned_abs() > self.config.max_jump_90k {
            let reason = if delta <= 0 {
                EndReason::TimeBackwards
            } else {
                EndReason::TimeJump
            };
            let last = self.last_delta;
            self.flush(last, out);
            out.push(FileOp::EndFile(reason));
            self.file = None;
            self.start(au, None, out);
            return;
        }
        let delta = u32::try_from(delta).unwrap_or(u32::MAX);
        let params_changed = !Arc::ptr_eq(&file.params, &au.params) && file.params != au.params;
        let rotate = au.key
            && au.pts.saturating_sub(file.base_pts).unsigned_abs() >= self.config.file_duration_90k;
        let jumped = au.key && self.cut_at.is_some_and(|p| au.pts >= p);
        // The camera's audio changed (or appeared): like a video parameter change, but the
        // video can only be cut at a key frame.
        let audio_changed = au.key && self.audio.changed;
        if params_changed || rotate || jumped || audio_changed {
            let reason = if params_changed || audio_changed {
                EndReason::ParamsChanged
            } else if jumped {
                EndReason::Discontinuity
            } else {
                EndReason::Rotation
            };
            self.flush(delta, out);
            out.push(FileOp::EndFile(reason));
            self.file = None;
            // A new SPS without a key frame cannot start a decodable file.
            let continues = au.key.then_some(reason);
            self.start(au, continues, out);
            return;
        }
        let first_pts = self.pending.first().map_or(last_pts, |f| f.pts);
        let span = au.pts.saturating_sub(first_pts).unsigned_abs();
        // Cut before a key frame once the fragment is half full (so short GOPs do not make
        // tiny fragments), and always before exceeding the limit.
        let key_cut = au.key && span >= self.config.max_fragment_90k / 2;
        if key_cut || span + u64::from(delta) > self.config.max_fragment_90k {
            self.flush(delta, out);
        }
        self.last_delta = delta;
        self.pending.push(au);
    }

    /// Ends the stream: writes what is pending (its last sample gets the previous
    /// sample's duration) and closes the file.
    pub fn finish(&mut self, out: &mut Vec<FileOp>) {
        // What was held waiting for audio is recorded without it.
        let expect = std::mem::replace(&mut self.audio.expect, false);
        self.release(out);
        self.audio.expect = expect;
        if self.file.is_some() {
            let last = self.last_delta;
            self.flush(last, out);
            out.push(FileOp::EndFile(EndReason::StreamEnd));
        }
        self.file = None;
        self.pending.clear();
        self.cut_at = None;
        self.audio.reset();
    }

    /// Forgets the open file without writing (after a write error the file was closed by
    /// the writer); the next key frame starts a new file.
    pub fn reset(&mut self) {
        self.file = None;
        self.pending.clear();
        self.held.clear();
        self.cut_at = None;
        self.audio.reset();
    }

    fn start(&mut self, au: AccessUnit, continues: Option<EndReason>, out: &mut Vec<FileOp>) {
        if !au.key {
            self.dropped += 1;
            return;
        }
        // A file starting at or after a reported discontinuity already separates it.
        if self.cut_at.is_some_and(|p| au.pts >= p) {
            self.cut_at = None;
        }
        let (audio_track, left) = self.audio.start_file();
        let mut tracks = vec![video_track(&au.params)];
        tracks.extend(audio_track);
        let mut init = Vec::new();
        fmp4::write_init_segment(&mut init, &tracks);
        out.push(FileOp::StartFile {
            params: au.params.clone(),
            init,
            capture_us: au.capture_us,
            continues,
        });
        if let Some(fps) = au.params.fps {
            if fps > 0.0 {
                self.last_delta = (f64::from(TIMESCALE) / fps).round().clamp(1.0, 90_000.0) as u32;
            }
        }
        self.file = Some(OpenFile {
            params: au.params.clone(),
            base_pts: au.pts,
            next_seq: 1,
        });
        self.pending.clear();
        self.pending.push(au);
        // Audio received after the previous file's last fragment belongs to this one.
        for f in left {
            self.place_audio(f);
        }
    }

    /// Emits every pending sample as one fragment; the last lasts `last_duration`.
    fn flush(&mut self, last_duration: u32, out: &mut Vec<FileOp>) {
        let Some(file) = &mut self.file else { return };
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let mut samples = Vec::with_capacity(pending.len());
        for (i, au) in pending.iter().enumerate() {
            let duration = match pending.get(i + 1) {
                Some(next) => u32::try_from(next.pts - au.pts).unwrap_or(u32::MAX),
                None => last_duration,
            };
            samples.push(Sample {
                duration,
                size: u32::try_from(au.data.len()).unwrap_or(u32::MAX),
                is_sync: au.key,
            });
        }
        let base_decode_time = pending
            .first()
            .map_or(0, |f| (f.pts - file.base_pts).unsigned_abs());
        let end_90k = base_decode_time + samples.iter().map(|s| u64::from(s.duration)).sum::<u64>();
        let audio = self.audio.take_run(end_90k);
        let mut header = Vec::new();
        let seq = file.next_seq;
        file.next_seq += 1;
        let mut runs = vec![TrackRun {
            track_id: VIDEO_TRACK_ID,
            base_decode_time,
            samples: &samples,
        }];
        if let Some((run, _)) = &audio {
            runs.push(TrackRun {
                track_id: crate::segment_audio::AUDIO_TRACK_ID,
                base_decode_time: run.base_decode_time,
                samples: &run.samples,
            });
        }
        fmp4::write_fragment_header(&mut header, seq, &runs);
        let mut data: Vec<Bytes> = pending.into_iter().map(|au| au.data).collect();
        let audio = audio.map(|(run, bytes)| {
            data.extend(bytes);
            run
        });
        out.push(FileOp::Fragment(FragmentOut {
            seq,
            base_decode_time,
            samples,
            audio,
            header,
            data,
        }));
    }
}

/// The recording track for `params`.
pub fn video_track(params: &Arc<StreamParams>) -> Track {
    Track::Video(VideoTrack {
        track_id: VIDEO_TRACK_ID,
        timescale: TIMESCALE,
        params: params.clone(),
    })
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The relative path of a file of `camera`/`stream` whose decode time 0 is at
/// `start_wall_us`: `<camera>/<stream>/<YYYYMMDD>/<HHMMSS>-<micros>.mp4` in UTC. The name
/// carries the start time exactly, so `reindex` recovers it from the file alone.
pub fn file_path(camera: &str, stream: &str, start_wall_us: i64) -> String {
    let secs = start_wall_us.div_euclid(1_000_000);
    let micros = start_wall_us.rem_euclid(1_000_000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{camera}/{stream}/{y:04}{mo:02}{d:02}/{:02}{:02}{:02}-{micros:06}.mp4",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Parses a path made by [`file_path`] into (camera, stream, start_wall_us).
pub fn parse_file_path(path: &str) -> Option<(String, String, i64)> {
    let mut parts = path.split('/');
    let (camera, stream, date, name) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || crate::check_name(camera).is_err()
        || crate::check_name(stream).is_err()
    {
        return None;
    }
    let name = name.strip_suffix(".mp4")?;
    let num = |s: &str| -> Option<i64> {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let (hms, micros) = name.split_once('-')?;
    if date.len() != 8 || hms.len() != 6 || micros.len() != 6 {
        return None;
    }
    let y = num(date.get(0..4)?)?;
    let mo = u32::try_from(num(date.get(4..6)?)?).ok()?;
    let d = u32::try_from(num(date.get(6..8)?)?).ok()?;
    let (h, mi, s) = (
        num(hms.get(0..2)?)?,
        num(hms.get(2..4)?)?,
        num(hms.get(4..6)?)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
    Some((
        camera.to_owned(),
        stream.to_owned(),
        secs * 1_000_000 + num(micros)?,
    ))
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
