//! Movie fragments (ISO/IEC 14496-12 §8.8): the `moof` describing one fragment's samples
//! and the header of the `mdat` holding them.

use super::boxes::{write_box, write_full_box, write_mdat_header, Put};
use super::init::{NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS};

/// One sample (an access unit or an audio frame) of a fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Duration in the track's timescale: the next sample's decode time minus this one's.
    pub duration: u32,
    /// Length of the sample's bytes in the `mdat`.
    pub size: u32,
    /// Whether a decoder can start here (an IDR picture; every audio frame).
    pub is_sync: bool,
}

/// The samples of one track in one fragment, in decoding order.
#[derive(Clone, Copy, Debug)]
pub struct TrackRun<'a> {
    /// The track's `track_ID`, as in the init segment.
    pub track_id: u32,
    /// Decode time of the first sample in the track's timescale, counted from the start of
    /// the file's timeline: the previous run's base plus its durations.
    pub base_decode_time: u64,
    /// The samples.
    pub samples: &'a [Sample],
}

/// What [`write_fragment_header`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentHeader {
    /// Bytes appended: the `moof` and the `mdat` header.
    pub len: usize,
    /// Bytes of sample data the caller must append next (the sum of all sample sizes).
    pub mdat_payload_len: u64,
}

/// `tfhd` flag (§8.8.7.1): offsets are relative to the start of the enclosing `moof`.
pub(super) const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// `trun` flags (§8.8.8.1).
pub(super) const TRUN_DATA_OFFSET: u32 = 0x00_0001;
pub(super) const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x00_0004;
pub(super) const TRUN_SAMPLE_DURATION: u32 = 0x00_0100;
pub(super) const TRUN_SAMPLE_SIZE: u32 = 0x00_0200;
pub(super) const TRUN_SAMPLE_FLAGS: u32 = 0x00_0400;
pub(super) const TRUN_SAMPLE_CTO: u32 = 0x00_0800;

/// Writes a movie fragment's `moof` (§8.8.4) and the header of its `mdat` (§8.1.1).
///
/// Per run with samples: a `traf` (§8.8.6) with `tfhd` (§8.8.7, default-base-is-moof),
/// `tfdt` (§8.8.12, version 1) and a `trun` (§8.8.8) carrying each sample's duration, size
/// and flags and the data offset of its first sample. Runs without samples are left out.
///
/// The caller then appends the bytes of every sample, run after run in the order given,
/// `mdat_payload_len` bytes in all. A fragment's `moof` + `mdat` must stay below 2 GiB
/// (`data_offset` is a signed 32-bit field); recorder fragments of about a second are far
/// below that.
pub fn write_fragment_header(
    out: &mut Vec<u8>,
    sequence_number: u32,
    runs: &[TrackRun<'_>],
) -> FragmentHeader {
    let start = out.len();
    let mut offset_slots = Vec::with_capacity(runs.len());
    let mut run_lens = Vec::with_capacity(runs.len());
    write_box(out, b"moof", |out| {
        // §8.8.5 Movie Fragment Header Box.
        write_full_box(out, b"mfhd", 0, 0, |out| out.u32(sequence_number));
        for run in runs.iter().filter(|r| !r.samples.is_empty()) {
            write_box(out, b"traf", |out| {
                write_full_box(out, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, |out| {
                    out.u32(run.track_id);
                });
                write_full_box(out, b"tfdt", 1, 0, |out| out.u64(run.base_decode_time));
                let flags =
                    TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE | TRUN_SAMPLE_FLAGS;
                write_full_box(out, b"trun", 0, flags, |out| {
                    out.u32(u32::try_from(run.samples.len()).unwrap_or(u32::MAX));
                    offset_slots.push(out.len());
                    out.u32(0); // data_offset, patched below
                    let mut len = 0u64;
                    for s in run.samples {
                        out.u32(s.duration);
                        out.u32(s.size);
                        out.u32(if s.is_sync {
                            SYNC_SAMPLE_FLAGS
                        } else {
                            NON_SYNC_SAMPLE_FLAGS
                        });
                        len += u64::from(s.size);
                    }
                    run_lens.push(len);
                });
            });
        }
    });
    let moof_len = out.len() - start;
    let mdat_payload_len: u64 = run_lens.iter().sum();
    let mut header = Vec::with_capacity(16);
    let mdat_header_len = write_mdat_header(&mut header, mdat_payload_len);
    // §8.8.8.3: data_offset is added to the base data offset, here the moof's first byte.
    let mut data_offset = (moof_len + mdat_header_len) as u64;
    for (slot, len) in offset_slots.into_iter().zip(run_lens) {
        let v = i32::try_from(data_offset).unwrap_or(i32::MAX);
        if let Some(s) = out.get_mut(slot..slot + 4) {
            s.copy_from_slice(&v.to_be_bytes());
        }
        data_offset += len;
    }
    out.extend_from_slice(&header);
    FragmentHeader {
        len: out.len() - start,
        mdat_payload_len,
    }
}
