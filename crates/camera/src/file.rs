//! Replays a video file as a live camera: an MP4 (ISO/IEC 14496-12/-15, `avc1` track) or
//! an H.264 Annex B elementary stream, in real time, looping forever, without
//! re-encoding.
//!
//! The whole file is parsed up front into access units (a clear error for a corrupt or
//! truncated file, before anything is published); playback then only walks that list,
//! so a loop costs nothing. Presentation times continue across loops (loop `k` adds `k`
//! times the file's duration) so every sink sees one continuous stream.
//!
//! Streams with B-frames are replayed in decode order with decode timestamps, which keeps
//! `pts` monotonic as the hub requires; cameras and our own encoder produce none.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use vigil_media::{AccessUnit, Codec, StreamParams};

use crate::clock::{now_us, sleep_until};
use crate::nal::{nal_type, parse_sps, push_avcc, AccessUnitSplitter, NAL_AUD, NAL_PPS, NAL_SPS};
use crate::CameraError;

/// Largest file we load (the whole file is held in memory while it plays).
const MAX_FILE_BYTES: u64 = 1 << 30;
/// The 90 kHz clock of [`AccessUnit::pts`].
const CLOCK_HZ: f64 = 90_000.0;

/// One access unit of the file, as parsed.
#[derive(Clone, Debug)]
struct Unit {
    data: Bytes,
    key: bool,
    /// Presentation time from the start of the file, 90 kHz.
    pts: i64,
    params: Arc<StreamParams>,
}

/// A parsed file, ready to be replayed.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    units: Vec<Unit>,
    /// Duration of one pass, 90 kHz; added to `pts` on every loop.
    loop_duration: i64,
    next: usize,
    loops: i64,
}

impl FileSource {
    /// Opens and parses `path`: `.mp4`/`.m4v`/`.mov` as MP4, anything else as Annex B.
    /// `default_fps` times an Annex B stream whose SPS carries no frame rate.
    pub fn open(path: &Path, default_fps: f64) -> Result<Self, CameraError> {
        let io = |source| CameraError::Io {
            path: path.to_owned(),
            source,
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_FILE_BYTES {
            return Err(invalid(
                path,
                format!("{len} bytes is more than the 1 GiB limit"),
            ));
        }
        let data = std::fs::read(path).map_err(io)?;
        let is_mp4 = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "mp4" | "m4v" | "mov"));
        if is_mp4 {
            Self::from_mp4(path, &data)
        } else {
            Self::from_annexb(path, &data, default_fps)
        }
    }

    /// Parses an Annex B H.264 stream already in memory (see [`FileSource::open`]).
    pub fn from_annexb(path: &Path, data: &[u8], default_fps: f64) -> Result<Self, CameraError> {
        if !(1.0..=240.0).contains(&default_fps) {
            return Err(CameraError::InvalidConfig(format!(
                "default fps {default_fps}"
            )));
        }
        // H.264 §7.4.1.2.3 access-unit boundaries.
        let mut splitter = AccessUnitSplitter::new();
        let mut pictures = splitter.push_annexb(data);
        pictures.extend(splitter.flush());
        let mut units = Vec::with_capacity(pictures.len());
        let (mut sps, mut pps): (Option<&[u8]>, Option<&[u8]>) = (None, None);
        let mut params: Option<Arc<StreamParams>> = None;
        let mut fps = None;
        for picture in pictures.iter().filter(|p| p.has_picture()) {
            let nals: Vec<&[u8]> = picture.nals.iter().map(|n| &n[..]).collect();
            for &nal in &nals {
                match nal_type(nal) {
                    Some(NAL_SPS) => sps = Some(nal),
                    Some(NAL_PPS) => pps = Some(nal),
                    _ => {}
                }
            }
            let (Some(s), Some(p)) = (sps, pps) else {
                continue;
            };
            if params
                .as_ref()
                .is_none_or(|cur| cur.sps != s || cur.pps != p)
            {
                let info = parse_sps(s).map_err(|e| invalid(path, e))?;
                fps = fps.or(info.fps);
                params = Some(Arc::new(StreamParams {
                    codec: Codec::H264,
                    vps: None,
                    sps: Bytes::copy_from_slice(s),
                    pps: Bytes::copy_from_slice(p),
                    width: info.width,
                    height: info.height,
                    fps: Some(info.fps.unwrap_or(default_fps)),
                }));
            }
            let key = picture.is_idr;
            let Some(params) = &params else { continue };
            // Playback must start on a key frame: drop what comes before the first one.
            if units.is_empty() && !key {
                continue;
            }
            let mut avcc = Vec::with_capacity(nals.iter().map(|n| n.len() + 4).sum());
            for nal in nals.iter().filter(|n| nal_type(n) != Some(NAL_AUD)) {
                push_avcc(&mut avcc, nal);
            }
            units.push(Unit {
                data: Bytes::from(avcc),
                key,
                pts: 0,
                params: params.clone(),
            });
        }
        if units.is_empty() {
            return Err(invalid(
                path,
                "no H.264 key frame with SPS and PPS found".into(),
            ));
        }
        let fps = fps.unwrap_or(default_fps);
        let at = |i: usize| (i as f64 * CLOCK_HZ / fps).round() as i64;
        for (i, u) in units.iter_mut().enumerate() {
            u.pts = at(i);
        }
        let loop_duration = at(units.len());
        Ok(Self::new(path, units, loop_duration))
    }

    /// Parses an MP4 file already in memory (see [`FileSource::open`]).
    pub fn from_mp4(path: &Path, data: &[u8]) -> Result<Self, CameraError> {
        // The mp4 crate is not hardened against hostile files; a panic inside it becomes
        // an error here instead of taking the camera thread down.
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse_mp4(data)));
        let (units, loop_duration) = match parsed {
            Ok(r) => r.map_err(|e| invalid(path, e))?,
            Err(_) => return Err(invalid(path, "malformed MP4 (parser gave up)".into())),
        };
        Ok(Self::new(path, units, loop_duration))
    }

    fn new(path: &Path, units: Vec<Unit>, loop_duration: i64) -> Self {
        FileSource {
            path: path.to_owned(),
            units,
            loop_duration: loop_duration.max(1),
            next: 0,
            loops: 0,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Access units in one pass over the file.
    pub fn frames_per_loop(&self) -> usize {
        self.units.len()
    }

    /// Duration of one pass, in 90 kHz units.
    pub fn loop_duration(&self) -> i64 {
        self.loop_duration
    }

    /// Parameters of the first access unit.
    pub fn params(&self) -> Option<Arc<StreamParams>> {
        self.units.first().map(|u| u.params.clone())
    }

    /// The next access unit, looping at the end. `capture_us` is stamped as given; `pts`
    /// counts from 0 at the first access unit of the first pass.
    pub fn next_au(&mut self, capture_us: i64) -> AccessUnit {
        if self.next >= self.units.len() {
            self.next = 0;
            self.loops += 1;
        }
        let unit = &self.units[self.next.min(self.units.len() - 1)];
        self.next += 1;
        AccessUnit {
            params: unit.params.clone(),
            pts: self
                .loops
                .saturating_mul(self.loop_duration)
                .saturating_add(unit.pts),
            capture_us,
            key: unit.key,
            data: unit.data.clone(),
        }
    }

    /// Plays in real time until `stop` is raised or `emit` returns false: access unit `i`
    /// is emitted at start + pts/90 kHz, stamped with the wall clock at emission. A slow
    /// consumer delays emission but never drops an access unit (that would break the
    /// decoder's reference chain).
    pub fn play(&mut self, stop: &AtomicBool, mut emit: impl FnMut(AccessUnit) -> bool) {
        let start = Instant::now();
        let base = self.loops.saturating_mul(self.loop_duration)
            + self.units.get(self.next).map_or(0, |u| u.pts);
        loop {
            let mut au = self.next_au(0);
            let offset = u64::try_from(au.pts - base).unwrap_or(0);
            let due = start + Duration::from_micros(offset * 1000 / 90);
            if !sleep_until(due, stop) {
                return;
            }
            au.capture_us = now_us();
            if !emit(au) {
                return;
            }
        }
    }
}

fn invalid(path: &Path, reason: String) -> CameraError {
    CameraError::InvalidFile {
        path: path.to_owned(),
        reason,
    }
}

/// MP4: the first `avc1` track, its `avcC` parameter sets (ISO/IEC 14496-15 §5.3.3.1)
/// and its samples, re-framed from the file's NAL length size to 4 bytes.
fn parse_mp4(data: &[u8]) -> Result<(Vec<Unit>, i64), String> {
    let mut reader = mp4::Mp4Reader::read_header(Cursor::new(data), data.len() as u64)
        .map_err(|e| format!("not a readable MP4: {e}"))?;
    let (track_id, timescale, length_size, sps, pps) = {
        let track = reader
            .tracks()
            .values()
            .find(|t| t.trak.mdia.minf.stbl.stsd.avc1.is_some())
            .ok_or("no H.264 (avc1) video track")?;
        let avcc = &track
            .trak
            .mdia
            .minf
            .stbl
            .stsd
            .avc1
            .as_ref()
            .ok_or("no avc1 sample entry")?
            .avcc;
        let sps = track
            .sequence_parameter_set()
            .map_err(|e| format!("avcC: {e}"))?
            .to_vec();
        let pps = track
            .picture_parameter_set()
            .map_err(|e| format!("avcC: {e}"))?
            .to_vec();
        (
            track.track_id(),
            track.timescale(),
            usize::from(avcc.length_size_minus_one & 3) + 1,
            sps,
            pps,
        )
    };
    if timescale == 0 {
        return Err("track timescale is 0".into());
    }
    let info = parse_sps(&sps)?;
    let count = reader.sample_count(track_id).map_err(|e| e.to_string())?;
    let to_90k = |t: u64| (u128::from(t) * 90_000 / u128::from(timescale)) as i64;
    let params = Arc::new(StreamParams {
        codec: Codec::H264,
        vps: None,
        sps: Bytes::from(sps),
        pps: Bytes::from(pps),
        width: info.width,
        height: info.height,
        fps: info.fps,
    });
    let mut units: Vec<Unit> = Vec::with_capacity(count as usize);
    let mut end = 0i64;
    for id in 1..=count {
        let sample = reader
            .read_sample(track_id, id)
            .map_err(|e| format!("sample {id}: {e}"))?
            .ok_or_else(|| format!("sample {id} missing"))?;
        let data = reframe(&sample.bytes, length_size)
            .ok_or_else(|| format!("sample {id}: bad NAL lengths"))?;
        let pts = to_90k(sample.start_time);
        if units.is_empty() && !sample.is_sync {
            continue;
        }
        if units.last().is_some_and(|u| pts <= u.pts) {
            return Err(format!("sample {id}: decode times go backwards"));
        }
        end = pts + to_90k(u64::from(sample.duration)).max(1);
        units.push(Unit {
            data: Bytes::from(data),
            key: sample.is_sync,
            pts,
            params: params.clone(),
        });
    }
    let first = units.first().ok_or("no key frame in the H.264 track")?.pts;
    for u in &mut units {
        u.pts -= first;
    }
    Ok((units, end - first))
}

/// Rewrites NAL units with `size`-byte lengths as 4-byte lengths; `None` if they overrun.
fn reframe(sample: &[u8], size: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(sample.len() + 16);
    let mut rest = sample;
    while !rest.is_empty() {
        let len_bytes = rest.get(..size)?;
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        let nal = rest.get(size..size + len)?;
        push_avcc(&mut out, nal);
        rest = &rest[size + len..];
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reframes_two_byte_lengths_and_rejects_overruns() {
        assert_eq!(
            reframe(&[0, 2, 0x65, 1], 2),
            Some(vec![0, 0, 0, 2, 0x65, 1])
        );
        assert_eq!(reframe(&[0, 3, 0x65, 1], 2), None);
        assert_eq!(reframe(&[], 4), None);
    }

    #[test]
    fn garbage_and_empty_files_are_clear_errors() {
        let p = Path::new("x.h264");
        for data in [
            &b""[..],
            b"hello world",
            &[0, 0, 1, 0x65, 0x88, 0, 0, 1, 0x41, 0x9a],
        ] {
            let err = FileSource::from_annexb(p, data, 30.0).unwrap_err();
            assert!(matches!(err, CameraError::InvalidFile { .. }), "{err}");
        }
        let p = Path::new("x.mp4");
        for data in [
            &b""[..],
            b"\0\0\0\x08ftyp",
            b"\0\0\0\x18ftypisom\0\0\0\0isomavc1\xff\xff",
        ] {
            let err = FileSource::from_mp4(p, data).unwrap_err();
            assert!(matches!(err, CameraError::InvalidFile { .. }), "{err}");
        }
        let missing = FileSource::open(Path::new("/nonexistent/v.mp4"), 30.0).unwrap_err();
        assert!(matches!(missing, CameraError::Io { .. }));
    }
}
