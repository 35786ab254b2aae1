//! Reading a fragmented MP4 back: crash recovery and reindexing.
//!
//! The input is hostile (a file cut off by a crash, a disk that returned garbage, or any
//! file a user dropped in the directory): nothing here panics, every allocation is bounded
//! by the input's length, and the first box that is incomplete or malformed ends the scan.

use super::boxes::{corrupt_if_short, read_box_header, Children, Cursor, ReadError, ReadResult};
use super::fragment::{
    TFHD_DEFAULT_BASE_IS_MOOF, TRUN_DATA_OFFSET, TRUN_FIRST_SAMPLE_FLAGS, TRUN_SAMPLE_CTO,
    TRUN_SAMPLE_DURATION, TRUN_SAMPLE_FLAGS, TRUN_SAMPLE_SIZE,
};
use super::parse_init::{parse_moov, TrexDefaults};
use super::{Mp4Error, Track};

/// The result of [`scan`].
#[derive(Clone, Debug, PartialEq)]
pub struct ScanResult {
    /// The initialization segment, once `ftyp` and `moov` are complete and make sense.
    pub init: Option<InitInfo>,
    /// Every complete, consistent `moof` + `mdat` pair, in file order.
    pub fragments: Vec<ScannedFragment>,
    /// Length of the valid prefix: the offset of the first byte that is not part of a
    /// complete box. Truncating the file to this length removes a partial last fragment.
    pub valid_len: u64,
    /// Why the scan stopped at `valid_len`.
    pub end: ScanEnd,
}

/// The parsed initialization segment.
#[derive(Clone, Debug, PartialEq)]
pub struct InitInfo {
    /// Tracks whose sample entry this module writes (`avc1`/`avc3`, `mp4a`, `ulaw`,
    /// `alaw`); fragments may still carry runs of other tracks, which callers can skip.
    pub tracks: Vec<Track>,
    /// Bytes from the start of the file to the end of `moov`.
    pub len: u64,
}

/// A complete movie fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedFragment {
    /// Offset of the `moof` in the file.
    pub offset: u64,
    /// Length of `moof` + `mdat`.
    pub len: u64,
    /// The `mfhd` sequence number.
    pub sequence_number: u32,
    /// One run per `traf`, in file order.
    pub runs: Vec<ScannedRun>,
}

/// The samples of one track in one fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedRun {
    /// The track.
    pub track_id: u32,
    /// Decode time of the first sample (from `tfdt`, or continuing the previous run).
    pub base_decode_time: u64,
    /// The samples in decoding order.
    pub samples: Vec<ScannedSample>,
}

/// One sample of a scanned fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScannedSample {
    /// Absolute byte offset of the sample's data in the file (inside the `mdat`).
    pub offset: u64,
    /// Decode time in the track's timescale.
    pub decode_time: u64,
    /// Duration in the track's timescale.
    pub duration: u32,
    /// Length in bytes.
    pub size: u32,
    /// Whether it is a sync sample (key frame).
    pub is_sync: bool,
}

/// Why [`scan`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every byte belongs to a complete box.
    Complete,
    /// The data ends inside a box (a crash while writing, or a copy in progress).
    Truncated,
    /// The box at `valid_len` is malformed or inconsistent.
    Corrupt {
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Top-level boxes that may sit between fragments and are skipped (§8.1.2 free/skip,
/// §8.16.2 styp, §8.16.3 sidx, DASH emsg, §8.16.5 prft, §8.8.9 mfra, §8.10.1 udta, §8.11.1 meta).
const SKIPPABLE: [&[u8; 4]; 9] = [
    b"free", b"skip", b"styp", b"sidx", b"emsg", b"prft", b"mfra", b"udta", b"meta",
];

/// Per-track decode time state carried from fragment to fragment.
#[derive(Clone, Copy, Debug)]
struct TrackState {
    defaults: TrexDefaults,
    /// Decode time after the last sample so far (where a run without `tfdt` starts).
    next: u64,
    /// Decode time of the last sample so far.
    last: Option<u64>,
}

/// Walks the top-level boxes of a fragmented MP4 file (ISO/IEC 14496-12 §8.8) and returns
/// its tracks and every complete fragment, stopping at the first box that is truncated,
/// malformed or inconsistent (a sample outside its `mdat`, a decode time going backwards,
/// a fragment before the `moov` ...).
///
/// Returns [`Mp4Error::NotMp4`] only when the first eight bytes are there and are not an
/// `ftyp` box header: such a file was not written by us and must not be truncated.
pub fn scan(data: &[u8]) -> Result<ScanResult, Mp4Error> {
    if let Some(first) = data.get(4..8) {
        if first != b"ftyp" {
            let mut found = [0; 4];
            found.copy_from_slice(first);
            return Err(Mp4Error::NotMp4 { found });
        }
    }
    let mut result = ScanResult {
        init: None,
        fragments: Vec::new(),
        valid_len: 0,
        end: ScanEnd::Complete,
    };
    let mut tracks: Vec<(u32, TrackState)> = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        match scan_box(data, pos, &mut result, &mut tracks) {
            Ok(next) => pos = next,
            Err(e) => {
                result.end = match e {
                    ReadError::Truncated => ScanEnd::Truncated,
                    ReadError::Corrupt(reason) => ScanEnd::Corrupt { reason },
                };
                break;
            }
        }
    }
    result.valid_len = pos as u64;
    Ok(result)
}

/// Extent of the complete box at `pos`: `(fourcc, header_len, end)`.
fn box_at(data: &[u8], pos: usize) -> ReadResult<([u8; 4], usize, usize)> {
    let rest = data.get(pos..).unwrap_or_default();
    let h = read_box_header(rest)?;
    let size = match h.size {
        Some(s) => usize::try_from(s).map_err(|_| ReadError::Truncated)?,
        None => rest.len(),
    };
    if size > rest.len() {
        return Err(ReadError::Truncated);
    }
    Ok((h.fourcc, h.header_len as usize, pos + size))
}

/// Handles the top-level box at `pos`; returns where the next one starts.
fn scan_box(
    data: &[u8],
    pos: usize,
    result: &mut ScanResult,
    tracks: &mut Vec<(u32, TrackState)>,
) -> ReadResult<usize> {
    let (fourcc, header_len, end) = box_at(data, pos)?;
    let body = data.get(pos + header_len..end).unwrap_or_default();
    match &fourcc {
        b"ftyp" if pos == 0 => Ok(end),
        b"moov" if result.init.is_none() => {
            let moov = parse_moov(body)?;
            *tracks = moov
                .trex
                .iter()
                .map(|&defaults| {
                    let state = TrackState {
                        defaults,
                        next: 0,
                        last: None,
                    };
                    (defaults.track_id, state)
                })
                .collect();
            result.init = Some(super::InitInfo {
                tracks: moov.tracks,
                len: end as u64,
            });
            Ok(end)
        }
        b"moof" if result.init.is_some() => {
            let (mdat_type, mdat_header, mdat_end) = box_at(data, end)?;
            if &mdat_type != b"mdat" {
                return Err(ReadError::Corrupt("moof not followed by mdat"));
            }
            let frag = Frag {
                moof_offset: pos as u64,
                mdat_start: (end + mdat_header) as u64,
                mdat_end: mdat_end as u64,
                max_samples: mdat_end - pos,
            };
            let mut new_tracks = tracks.clone();
            let (sequence_number, runs) = parse_moof(body, &frag, &mut new_tracks)?;
            *tracks = new_tracks;
            result.fragments.push(ScannedFragment {
                offset: pos as u64,
                len: (mdat_end - pos) as u64,
                sequence_number,
                runs,
            });
            Ok(mdat_end)
        }
        b"mdat" => Ok(end),
        t if SKIPPABLE.contains(&t) => Ok(end),
        _ => Err(ReadError::Corrupt("unexpected top-level box")),
    }
}

/// Where a fragment's data may lie.
struct Frag {
    moof_offset: u64,
    mdat_start: u64,
    mdat_end: u64,
    /// Bound on the samples of one fragment: one per byte of the fragment, so hostile
    /// zero-size samples cannot make allocations outgrow the input.
    max_samples: usize,
}

/// §8.8.4 Movie Fragment Box: sequence number and one run per `traf`.
fn parse_moof(
    body: &[u8],
    frag: &Frag,
    tracks: &mut [(u32, TrackState)],
) -> ReadResult<(u32, Vec<ScannedRun>)> {
    let mut sequence_number = None;
    let mut runs = Vec::new();
    let mut samples_total = 0usize;
    // §8.8.7.1: without base-data-offset or default-base-is-moof, the first traf's base
    // is the moof and later ones continue after the previous traf's data.
    let mut implicit_base = frag.moof_offset;
    for child in Children::new(body) {
        let (fourcc, b) = child?;
        match &fourcc {
            b"mfhd" => {
                let mut c = Cursor::new(b);
                corrupt_if_short(c.version_flags(), "short mfhd")?;
                sequence_number = Some(corrupt_if_short(c.u32(), "short mfhd")?);
            }
            b"traf" => {
                let (run, data_end) =
                    parse_traf(b, frag, implicit_base, tracks, &mut samples_total)?;
                implicit_base = data_end;
                runs.push(run);
            }
            _ => {}
        }
    }
    let sequence_number = sequence_number.ok_or(ReadError::Corrupt("moof without mfhd"))?;
    Ok((sequence_number, runs))
}

/// §8.8.7 Track Fragment Header Box.
struct Tfhd {
    track_id: u32,
    base_data_offset: Option<u64>,
    default_base_is_moof: bool,
    duration: Option<u32>,
    size: Option<u32>,
    flags: Option<u32>,
}

fn parse_tfhd(b: &[u8]) -> ReadResult<Tfhd> {
    let mut c = Cursor::new(b);
    let (_, flags) = c.version_flags()?;
    let track_id = c.u32()?;
    let base_data_offset = if flags & 0x01 != 0 {
        Some(c.u64()?)
    } else {
        None
    };
    if flags & 0x02 != 0 {
        c.u32()?; // sample_description_index
    }
    let mut opt = |bit: u32| -> ReadResult<Option<u32>> {
        if flags & bit != 0 {
            c.u32().map(Some)
        } else {
            Ok(None)
        }
    };
    Ok(Tfhd {
        track_id,
        base_data_offset,
        duration: opt(0x08)?,
        size: opt(0x10)?,
        flags: opt(0x20)?,
        default_base_is_moof: flags & TFHD_DEFAULT_BASE_IS_MOOF != 0,
    })
}

/// §8.8.6 Track Fragment Box: its tfhd, tfdt (§8.8.12) and truns (§8.8.8) as one run.
/// Returns the run and the end of its data (the implicit base of the next traf).
fn parse_traf(
    body: &[u8],
    frag: &Frag,
    implicit_base: u64,
    tracks: &mut [(u32, TrackState)],
    samples_total: &mut usize,
) -> ReadResult<(ScannedRun, u64)> {
    let mut tfhd = None;
    let mut tfdt = None;
    for child in Children::new(body) {
        let (fourcc, b) = child?;
        match &fourcc {
            b"tfhd" if tfhd.is_none() => {
                tfhd = Some(corrupt_if_short(parse_tfhd(b), "short tfhd")?)
            }
            b"tfdt" if tfdt.is_none() => {
                let mut c = Cursor::new(b);
                let (version, _) = corrupt_if_short(c.version_flags(), "short tfdt")?;
                let t = if version == 1 {
                    c.u64()
                } else {
                    c.u32().map(u64::from)
                };
                tfdt = Some(corrupt_if_short(t, "short tfdt")?);
            }
            _ => {}
        }
    }
    let tfhd = tfhd.ok_or(ReadError::Corrupt("traf without tfhd"))?;
    let state = tracks
        .iter_mut()
        .find(|(id, _)| *id == tfhd.track_id)
        .map(|(_, s)| s)
        .ok_or(ReadError::Corrupt("traf for a track without trex"))?;
    let base_decode_time = match tfdt {
        Some(t) if state.last.is_some_and(|last| t < last) => {
            return Err(ReadError::Corrupt("decode time goes backwards"))
        }
        Some(t) => t,
        None => state.next,
    };
    let base = match tfhd.base_data_offset {
        Some(b) => b,
        None if tfhd.default_base_is_moof => frag.moof_offset,
        None => implicit_base,
    };
    let defaults = Defaults {
        duration: tfhd.duration.unwrap_or(state.defaults.duration),
        size: tfhd.size.unwrap_or(state.defaults.size),
        flags: tfhd.flags.unwrap_or(state.defaults.flags),
    };
    let mut run = ScannedRun {
        track_id: tfhd.track_id,
        base_decode_time,
        samples: Vec::new(),
    };
    let mut decode_time = base_decode_time;
    let mut data_pos = base;
    for child in Children::new(body) {
        let (fourcc, b) = child?;
        if &fourcc == b"trun" {
            let mut ctx = TrunCtx {
                frag,
                defaults: &defaults,
                base,
                data_pos: &mut data_pos,
                decode_time: &mut decode_time,
                samples_total,
            };
            corrupt_if_short(parse_trun(b, &mut ctx, &mut run.samples), "short trun")?;
        }
    }
    if let Some(last) = run.samples.last() {
        state.last = Some(last.decode_time);
    }
    state.next = decode_time;
    Ok((run, data_pos))
}

/// Sample defaults of a traf: tfhd's, falling back to trex's.
struct Defaults {
    duration: u32,
    size: u32,
    flags: u32,
}

struct TrunCtx<'a> {
    frag: &'a Frag,
    defaults: &'a Defaults,
    /// Base data offset of the traf.
    base: u64,
    /// Where the next sample's data is, absent a trun data_offset.
    data_pos: &'a mut u64,
    decode_time: &'a mut u64,
    samples_total: &'a mut usize,
}

/// §8.8.8 Track Fragment Run Box, appending its samples to `out`.
fn parse_trun(b: &[u8], ctx: &mut TrunCtx<'_>, out: &mut Vec<ScannedSample>) -> ReadResult<()> {
    let mut c = Cursor::new(b);
    let (_, flags) = c.version_flags()?;
    let count = usize::try_from(c.u32()?).map_err(|_| ReadError::Corrupt("sample count"))?;
    if flags & TRUN_DATA_OFFSET != 0 {
        // A signed offset from the base data offset.
        let off = i64::from(c.u32()? as i32);
        *ctx.data_pos = ctx
            .base
            .checked_add_signed(off)
            .ok_or(ReadError::Corrupt("data offset out of range"))?;
    }
    let first_flags = if flags & TRUN_FIRST_SAMPLE_FLAGS != 0 {
        Some(c.u32()?)
    } else {
        None
    };
    let fields = [
        TRUN_SAMPLE_DURATION,
        TRUN_SAMPLE_SIZE,
        TRUN_SAMPLE_FLAGS,
        TRUN_SAMPLE_CTO,
    ]
    .iter()
    .filter(|&&f| flags & f != 0)
    .count();
    // Check the table is all there before allocating anything for it.
    if count.saturating_mul(fields * 4) > c.remaining() {
        return Err(ReadError::Corrupt("trun shorter than its sample count"));
    }
    *ctx.samples_total = ctx.samples_total.saturating_add(count);
    if *ctx.samples_total > ctx.frag.max_samples {
        return Err(ReadError::Corrupt(
            "more samples than bytes in the fragment",
        ));
    }
    out.reserve(count);
    for i in 0..count {
        let mut field = |bit: u32, default: u32| -> ReadResult<u32> {
            if flags & bit != 0 {
                c.u32()
            } else {
                Ok(default)
            }
        };
        let duration = field(TRUN_SAMPLE_DURATION, ctx.defaults.duration)?;
        let size = field(TRUN_SAMPLE_SIZE, ctx.defaults.size)?;
        let default_flags = match (i, first_flags) {
            (0, Some(f)) => f,
            _ => ctx.defaults.flags,
        };
        let sample_flags = field(TRUN_SAMPLE_FLAGS, default_flags)?;
        field(TRUN_SAMPLE_CTO, 0)?;
        let offset = *ctx.data_pos;
        let end = offset
            .checked_add(u64::from(size))
            .ok_or(ReadError::Corrupt("sample offset overflows"))?;
        if offset < ctx.frag.mdat_start || end > ctx.frag.mdat_end {
            return Err(ReadError::Corrupt("sample outside its mdat"));
        }
        out.push(ScannedSample {
            offset,
            decode_time: *ctx.decode_time,
            duration,
            size,
            // §8.8.3.1: sample_is_non_sync_sample is bit 16 of the sample flags.
            is_sync: sample_flags & 0x0001_0000 == 0,
        });
        *ctx.data_pos = end;
        *ctx.decode_time = ctx
            .decode_time
            .checked_add(u64::from(duration))
            .ok_or(ReadError::Corrupt("decode time overflows"))?;
    }
    Ok(())
}

/// Fuzzing entry point: scans `data` and panics if any documented property of [`scan`]
/// fails — every sample lies inside its fragment's `mdat` and the input, decode times never
/// go backwards within a track, `valid_len` is within the input, and scanning
/// `data[..valid_len]` again finds the same init and fragments.
#[doc(hidden)]
pub fn check_scan_invariants(data: &[u8]) {
    let Ok(r) = scan(data) else {
        return;
    };
    let len = data.len() as u64;
    assert!(r.valid_len <= len, "valid_len beyond the input");
    assert_eq!(r.end == ScanEnd::Complete, r.valid_len == len);
    let mut last_end = r.init.as_ref().map_or(0, |i| i.len);
    assert!(last_end <= r.valid_len);
    let mut last_time: Vec<(u32, u64)> = Vec::new();
    for f in &r.fragments {
        assert!(f.offset >= last_end, "fragments overlap");
        last_end = f.offset + f.len;
        assert!(last_end <= r.valid_len, "fragment beyond valid_len");
        let (_, _, moof_end) = box_at(data, f.offset as usize).expect("fragment has a moof");
        let (_, mdat_header, _) = box_at(data, moof_end).expect("fragment has an mdat");
        let mdat = (moof_end + mdat_header) as u64;
        for run in &f.runs {
            let mut expect = run.base_decode_time;
            for s in &run.samples {
                assert!(s.offset >= mdat, "sample before its mdat");
                assert!(
                    s.offset + u64::from(s.size) <= last_end,
                    "sample after its mdat"
                );
                assert_eq!(s.decode_time, expect);
                expect += u64::from(s.duration);
                match last_time.iter_mut().find(|(id, _)| *id == run.track_id) {
                    Some((_, t)) => {
                        assert!(s.decode_time >= *t, "decode time goes backwards");
                        *t = s.decode_time;
                    }
                    None => last_time.push((run.track_id, s.decode_time)),
                }
            }
        }
    }
    let prefix = data.get(..r.valid_len as usize).unwrap_or_default();
    let again = scan(prefix).unwrap_or_else(|e| panic!("valid prefix rejected: {e}"));
    assert_eq!(again.init, r.init);
    assert_eq!(again.fragments, r.fragments);
    assert_eq!(again.valid_len, r.valid_len);
}
