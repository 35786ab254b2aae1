//! Export: a wall-clock range of one stream as one standard (progressive, fast-start) MP4,
//! planned from the index alone.
//!
//! The plan is the file's first bytes (`ftyp`, `moov` with full sample tables, `mdat`
//! header, from [`ExportBuilder`]) followed by byte ranges of segment files holding the
//! samples, in order. Its total length is known before any media byte is read, so an HTTP
//! handler can answer `Range` requests and `vigil export` can stream it to a file.
//!
//! - Start: the last key frame at or before the requested start (walking back through
//!   earlier fragments of the same file when the first fragment starts mid-GOP); if the
//!   range starts in a gap, the first key frame after it.
//! - End: every sample that starts before the requested end, so the export is at most one
//!   frame longer than asked (plus the walk back to the key frame).
//! - Gaps and file boundaries: the export's timeline is wall time. Each sample's decode
//!   time is its file's start wall time plus its decode time inside the file; across a
//!   gap the last picture before it is held (ExportBuilder stretches its duration). No
//!   edit list is needed and players show the same duration as the requested range.
//! - Reads: the init segment (`ftyp` + `moov`, a few hundred bytes) of each touched file
//!   for its codec parameters; sample sizes and key frames come from the index. Media
//!   bytes are never read while planning. The export stops early at a file whose codec
//!   parameters differ from the first one's (a resolution change), since one MP4 track
//!   has one sample description here.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tracing::info;
use vigil_media::fmp4::{self, ExportBuilder, Track};

use vigil_media::time::{rescale, Ticks90k, MICROS_PER_SEC, VIDEO_HZ};

use crate::archive::Archive;
use crate::db::{wall_at, FileRow, FragmentRow};
use crate::segment::VIDEO_TRACK_ID;
use crate::segment_audio::AUDIO_TRACK_ID;
use crate::Error;

/// Everything needed to produce an export file. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportPlan {
    /// The first bytes of the file: `ftyp`, `moov`, `mdat` header.
    pub header: Vec<u8>,
    /// Then these byte ranges, in order: (file, offset, length). Paths are host paths when
    /// the storage is a directory, else relative to the recordings root.
    pub ranges: Vec<(PathBuf, u64, u64)>,
    /// Length of the whole file.
    pub total_len: u64,
    /// Wall-clock time of the first sample (a key frame), µs since the epoch.
    pub start_wall_us: i64,
    /// Wall-clock time after the last sample.
    pub end_wall_us: i64,
    /// Number of video samples.
    pub frames: u64,
    /// Number of audio samples (0 without audio).
    pub audio_frames: u64,
}

impl ExportPlan {
    /// Writes bytes `[start, end)` of the export to `out`, reading media ranges through
    /// `read` (offset, length) of each path. The HTTP Range handler and `write_to` use it.
    pub fn write_range_with(
        &self,
        start: u64,
        end: u64,
        out: &mut impl Write,
        mut read: impl FnMut(&Path, u64, u64) -> std::io::Result<Vec<u8>>,
    ) -> std::io::Result<()> {
        let end = end.min(self.total_len);
        let mut pos = 0u64;
        let header_len = self.header.len() as u64;
        if start < header_len {
            let a = usize::try_from(start).unwrap_or(usize::MAX);
            let b = usize::try_from(end.min(header_len)).unwrap_or(usize::MAX);
            if let Some(h) = self.header.get(a..b) {
                out.write_all(h)?;
            }
        }
        pos += header_len;
        for (path, offset, len) in &self.ranges {
            let (r0, r1) = (pos, pos + len);
            pos = r1;
            if r1 <= start || r0 >= end {
                continue;
            }
            let skip = start.saturating_sub(r0);
            let take = end.min(r1) - r0 - skip;
            out.write_all(&read(path, offset + skip, take)?)?;
        }
        Ok(())
    }

    /// Writes bytes `[start, end)` reading host files directly (plans from a directory).
    pub fn write_range(&self, start: u64, end: u64, out: &mut impl Write) -> std::io::Result<()> {
        self.write_range_with(start, end, out, |path, offset, len| {
            let mut f = std::fs::File::open(path)?;
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::new();
            f.take(len).read_to_end(&mut buf)?;
            if buf.len() as u64 != len {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{} is shorter than the index says", path.display()),
                ));
            }
            Ok(buf)
        })
    }

    /// Writes the whole export.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        self.write_range(0, self.total_len, out)
    }
}

/// One sample, located.
struct Located {
    /// Index of its fragment in the plan's fragment list.
    frag: usize,
    file_id: i64,
    wall_us: i64,
    decode_in_file: u64,
    duration: u32,
    size: u32,
    is_sync: bool,
    offset: u64,
}

fn locate(index: usize, frag: &FragmentRow, file: &FileRow, out: &mut Vec<Located>) {
    let mut t = frag.start_90k;
    let mut offset = frag.data_offset;
    for s in &frag.samples {
        out.push(Located {
            frag: index,
            file_id: frag.file_id,
            wall_us: wall_at(file.start_wall_us, t),
            decode_in_file: t,
            duration: s.duration,
            size: s.size,
            is_sync: s.is_sync,
            offset,
        });
        t += u64::from(s.duration);
        offset += u64::from(s.size);
    }
}

/// One audio sample, located.
struct AudioLocated {
    frag: usize,
    file_id: i64,
    wall_us: i64,
    end_wall_us: i64,
    /// Decode time in the file, in the audio track's timescale.
    decode_in_file: u64,
    duration: u32,
    size: u32,
    offset: u64,
}

fn locate_audio(
    index: usize,
    frag: &FragmentRow,
    file: &FileRow,
    rate: u32,
    out: &mut Vec<AudioLocated>,
) {
    let Some(run) = &frag.audio else { return };
    let wall = |t: u64| {
        let us = rescale(i128::from(t), rate, MICROS_PER_SEC);
        file.start_wall_us
            .saturating_add(i64::try_from(us).unwrap_or(i64::MAX))
    };
    let mut t = run.base_decode_time;
    let mut offset = frag.audio_data_offset();
    for s in &run.samples {
        out.push(AudioLocated {
            frag: index,
            file_id: frag.file_id,
            wall_us: wall(t),
            end_wall_us: wall(t + u64::from(s.duration)),
            decode_in_file: t,
            duration: s.duration,
            size: s.size,
            offset,
        });
        t += u64::from(s.duration);
        offset += u64::from(s.size);
    }
}

/// Plans the export of `[start_wall_us, end_wall_us)` of a stream.
pub fn plan(
    store: &Archive,
    stream_id: i64,
    start_wall_us: i64,
    end_wall_us: i64,
) -> Result<ExportPlan, Error> {
    let db = store.index();
    let mut frags = db.fragments_overlapping(stream_id, start_wall_us, end_wall_us)?;
    if frags.is_empty() {
        return Err(Error::NothingRecorded);
    }
    let mut files: HashMap<i64, FileRow> = HashMap::new();
    let mut file_of = |id: i64| -> Result<FileRow, Error> {
        if let Some(f) = files.get(&id) {
            return Ok(f.clone());
        }
        let f = db
            .file(id)?
            .ok_or_else(|| Error::Corrupt(format!("fragment of missing file {id}")))?;
        files.insert(id, f.clone());
        Ok(f)
    };
    // Walk back to a key frame at or before the start, within the first file. "At or
    // before": when the start falls exactly on the first sample of a fragment without a key
    // frame, the fragment before it ends exactly at the start, so `fragments_overlapping`
    // leaves it out, and the walk must still go back through it (the export would otherwise
    // begin at the next key frame, up to a GOP late). Only a start that precedes every
    // located sample lies in a gap (or before the recording), where there is nothing to
    // walk back to.
    let samples = loop {
        let mut samples = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            locate(i, f, &file_of(f.file_id)?, &mut samples);
        }
        let key_at_or_before = samples
            .iter()
            .any(|s| s.is_sync && s.wall_us <= start_wall_us);
        let first_at_or_before = samples.first().is_some_and(|s| s.wall_us <= start_wall_us);
        if key_at_or_before || !first_at_or_before {
            break samples;
        }
        let Some(first) = frags.first() else {
            break samples;
        };
        match db.fragment_before(first.file_id, first.seq)? {
            Some(prev) => frags.insert(0, prev),
            None => break samples,
        }
    };
    let first_index = samples
        .iter()
        .rposition(|s| s.is_sync && s.wall_us <= start_wall_us)
        .or_else(|| samples.iter().position(|s| s.is_sync))
        .ok_or(Error::NothingRecorded)?;
    let chosen: Vec<&Located> = samples[first_index..]
        .iter()
        .take_while(|s| s.wall_us < end_wall_us)
        .collect();
    let first = chosen.first().ok_or(Error::NothingRecorded)?;

    // Codec parameters from each touched file's init segment.
    let mut tracks: HashMap<i64, Track> = HashMap::new();
    let mut audio_tracks: HashMap<i64, Track> = HashMap::new();
    for s in &chosen {
        if tracks.contains_key(&s.file_id) {
            continue;
        }
        let f = file_of(s.file_id)?;
        let init = store
            .storage
            .read_range(Path::new(&f.path), 0, f.init_len.max(0) as u64)
            .map_err(|e| Error::io(format!("reading {}", f.path), e))?;
        let scanned = fmp4::scan(&init)?;
        let file_tracks = scanned.init.map(|i| i.tracks).unwrap_or_default();
        if let Some(a) = file_tracks.iter().find(|t| t.track_id() == AUDIO_TRACK_ID) {
            audio_tracks.insert(s.file_id, a.clone());
        }
        let track = file_tracks
            .into_iter()
            .find(|t| t.track_id() == VIDEO_TRACK_ID)
            .ok_or_else(|| {
                Error::Corrupt(format!("{}: no video track in its init segment", f.path))
            })?;
        tracks.insert(s.file_id, track);
    }
    let track0 = tracks
        .get(&first.file_id)
        .cloned()
        .ok_or(Error::NothingRecorded)?;
    let first_file = file_of(first.file_id)?;
    let origin_90k = i128::from(Ticks90k::from_micros(first_file.start_wall_us).0)
        + i128::from(first.decode_in_file);

    // Video samples up to a codec parameter change.
    let included = chosen
        .iter()
        .take_while(|s| tracks.get(&s.file_id) == Some(&track0))
        .count();
    if included < chosen.len() {
        info!("export stops at a codec parameter change");
    }
    let video = chosen.get(..included).unwrap_or_default();
    let end_wall = video.last().map_or(first.wall_us, |s| {
        s.wall_us + Ticks90k(i64::from(s.duration)).to_micros()
    });
    // Audio of the files whose audio track is the first file's, from the frame playing at
    // the first picture to the last one starting before the last picture ends.
    let audio0 = audio_tracks.get(&first.file_id).cloned();
    let mut audio: Vec<AudioLocated> = Vec::new();
    if let Some(a0) = &audio0 {
        for (i, f) in frags.iter().enumerate() {
            let file = file_of(f.file_id)?;
            if tracks.get(&f.file_id) != Some(&track0) || audio_tracks.get(&f.file_id) != Some(a0) {
                continue;
            }
            locate_audio(i, f, &file, a0.timescale(), &mut audio);
        }
        audio.retain(|a| a.end_wall_us > first.wall_us && a.wall_us < end_wall);
    }

    let mut all_tracks = vec![track0.clone()];
    all_tracks.extend(audio0.clone().filter(|_| !audio.is_empty()));
    let mut builder = ExportBuilder::new(&all_tracks);
    let mut ranges: Vec<(PathBuf, u64, u64)> = Vec::new();
    let mut last_decode = 0u64;
    let mut last_audio_decode = 0u64;
    let rate_hz = audio0.as_ref().map_or(1, Track::timescale).max(1);
    let origin_audio = rescale(origin_90k, VIDEO_HZ, rate_hz);
    let (mut v, mut a) = (video.iter().peekable(), audio.iter().peekable());
    // mdat order = file order: per fragment, its video samples, then its audio samples.
    loop {
        let next_v = v.peek().map(|s| s.frag);
        let next_a = a.peek().map(|s| s.frag);
        let take_video = match (next_v, next_a) {
            (None, None) => break,
            (Some(fv), Some(fa)) => fv <= fa,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        let (file_id, offset, size) = if take_video {
            let Some(s) = v.next() else { break };
            let f = file_of(s.file_id)?;
            let t = i128::from(Ticks90k::from_micros(f.start_wall_us).0)
                + i128::from(s.decode_in_file)
                - origin_90k;
            let decode = u64::try_from(t).unwrap_or(0).max(last_decode);
            builder.push_sample(VIDEO_TRACK_ID, decode, s.duration, s.size, s.is_sync)?;
            last_decode = decode;
            (s.file_id, s.offset, s.size)
        } else {
            let Some(s) = a.next() else { break };
            let f = file_of(s.file_id)?;
            let t = rescale(i128::from(f.start_wall_us), MICROS_PER_SEC, rate_hz)
                + i128::from(s.decode_in_file)
                - origin_audio;
            let decode = u64::try_from(t).unwrap_or(0).max(last_audio_decode);
            builder.push_sample(AUDIO_TRACK_ID, decode, s.duration, s.size, true)?;
            last_audio_decode = decode;
            (s.file_id, s.offset, s.size)
        };
        let f = file_of(file_id)?;
        let host = store
            .storage
            .host_path(Path::new(&f.path))
            .unwrap_or_else(|| PathBuf::from(&f.path));
        match ranges.last_mut() {
            Some((p, off, len)) if *p == host && *off + *len == offset => *len += u64::from(size),
            _ => ranges.push((host, offset, u64::from(size))),
        }
    }
    let layout = builder.finish();
    let media: u64 = ranges.iter().map(|r| r.2).sum();
    if layout.header.len() as u64 + media != layout.total_len {
        return Err(Error::Corrupt("export layout and ranges disagree".into()));
    }
    Ok(ExportPlan {
        header: layout.header,
        ranges,
        total_len: layout.total_len,
        start_wall_us: first.wall_us,
        end_wall_us: end_wall,
        frames: video.len() as u64,
        audio_frames: audio.len() as u64,
    })
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
