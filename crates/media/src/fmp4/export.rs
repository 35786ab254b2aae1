//! Progressive ("fast start") MP4 exports: `ftyp`, a `moov` with complete sample tables,
//! then one `mdat` whose bytes the caller copies from the recordings.

use super::boxes::{write_box, write_full_box, write_mdat_header, Put};
use super::init::{write_ftyp, write_mvhd, write_trak, MOVIE_TIMESCALE};
use super::{Mp4Error, Track};

/// Collects the samples of an export and lays out the file.
///
/// Push every sample in the order its bytes will follow in the `mdat` (tracks may be
/// interleaved; consecutive samples of one track form a chunk), then [`finish`]: the
/// returned header is everything before the first media byte, and `total_len` is the
/// exact file length, known before any media is read.
///
/// Each track starts playing at time zero (no edit list). A sample's duration is stretched
/// to reach the next sample's decode time, so a gap in the recording shows as the last
/// picture held and the export's duration matches the time range asked for.
///
/// [`finish`]: ExportBuilder::finish
#[derive(Debug)]
pub struct ExportBuilder {
    tracks: Vec<ExportTrack>,
    /// Chunks in `mdat` order.
    chunks: Vec<Chunk>,
    payload_len: u64,
}

#[derive(Debug)]
struct ExportTrack {
    track: Track,
    /// `(duration, size)` per sample.
    samples: Vec<(u32, u32)>,
    /// 1-based numbers of sync samples.
    sync: Vec<u32>,
    last_decode_time: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
struct Chunk {
    track: usize,
    samples: u32,
    /// Offset from the start of the `mdat` payload.
    offset: u64,
}

/// The layout of an export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportLayout {
    /// `ftyp`, `moov` and the `mdat` header: the first bytes of the file.
    pub header: Vec<u8>,
    /// Length of the whole file: `header.len()` plus the sizes of all samples.
    pub total_len: u64,
}

impl ExportBuilder {
    /// An export of `tracks` without samples yet. Should two tracks share a track id, the
    /// first one is used.
    pub fn new(tracks: &[Track]) -> Self {
        let mut out: Vec<ExportTrack> = Vec::with_capacity(tracks.len());
        for t in tracks {
            if out.iter().all(|e| e.track.track_id() != t.track_id()) {
                out.push(ExportTrack {
                    track: t.clone(),
                    samples: Vec::new(),
                    sync: Vec::new(),
                    last_decode_time: None,
                });
            }
        }
        ExportBuilder {
            tracks: out,
            chunks: Vec::new(),
            payload_len: 0,
        }
    }

    /// Appends a sample whose `size` bytes the caller will copy next into the `mdat`.
    ///
    /// `decode_time` is in the track's timescale on any origin; only differences between
    /// samples of one track matter. Errors (and nothing is added) for an unknown track or
    /// a decode time before the previous sample's.
    pub fn push_sample(
        &mut self,
        track_id: u32,
        decode_time: u64,
        duration: u32,
        size: u32,
        is_sync: bool,
    ) -> Result<(), Mp4Error> {
        let index = self
            .tracks
            .iter()
            .position(|t| t.track.track_id() == track_id)
            .ok_or(Mp4Error::UnknownTrack(track_id))?;
        let t = self
            .tracks
            .get_mut(index)
            .ok_or(Mp4Error::UnknownTrack(track_id))?;
        if let Some(previous) = t.last_decode_time {
            if decode_time < previous {
                return Err(Mp4Error::DecodeTimeBackwards {
                    track_id,
                    decode_time,
                    previous,
                });
            }
            if let Some(last) = t.samples.last_mut() {
                last.0 = u32::try_from(decode_time - previous).unwrap_or(u32::MAX);
            }
        }
        t.last_decode_time = Some(decode_time);
        t.samples.push((duration, size));
        if is_sync {
            t.sync
                .push(u32::try_from(t.samples.len()).unwrap_or(u32::MAX));
        }
        match self.chunks.last_mut() {
            Some(c) if c.track == index => c.samples += 1,
            _ => self.chunks.push(Chunk {
                track: index,
                samples: 1,
                offset: self.payload_len,
            }),
        }
        self.payload_len += u64::from(size);
        Ok(())
    }

    /// Bytes of media pushed so far.
    pub fn payload_len(&self) -> u64 {
        self.payload_len
    }

    /// Lays out the file: `ftyp` (§4.3), `moov` (§8.2.1) and the `mdat` header (§8.1.1).
    pub fn finish(self) -> ExportLayout {
        let mut header = Vec::new();
        write_ftyp(
            &mut header,
            b"isom",
            0x200,
            &[b"isom", b"iso2", b"avc1", b"mp41"],
        );
        let moov_start = header.len();
        // co64 entries have a fixed width, so the moov's length does not depend on where
        // the mdat starts: write it once to learn that, then again with real offsets.
        self.write_moov(&mut header, 0);
        let mut mdat = Vec::new();
        write_mdat_header(&mut mdat, self.payload_len);
        let base = (header.len() + mdat.len()) as u64;
        header.truncate(moov_start);
        self.write_moov(&mut header, base);
        header.extend_from_slice(&mdat);
        let total_len = header.len() as u64 + self.payload_len;
        ExportLayout { header, total_len }
    }

    fn write_moov(&self, out: &mut Vec<u8>, base: u64) {
        let durations: Vec<u64> = self
            .tracks
            .iter()
            .map(|t| t.samples.iter().map(|s| u64::from(s.0)).sum())
            .collect();
        let movie_durations: Vec<u64> = self
            .tracks
            .iter()
            .zip(&durations)
            .map(|(t, &d)| {
                let ms = u128::from(d) * u128::from(MOVIE_TIMESCALE)
                    / u128::from(t.track.timescale().max(1));
                u64::try_from(ms).unwrap_or(u64::MAX)
            })
            .collect();
        let tracks: Vec<Track> = self.tracks.iter().map(|t| t.track.clone()).collect();
        write_box(out, b"moov", |out| {
            write_mvhd(
                out,
                movie_durations.iter().copied().max().unwrap_or(0),
                &tracks,
            );
            for (i, t) in self.tracks.iter().enumerate() {
                let d = durations.get(i).copied().unwrap_or(0);
                let md = movie_durations.get(i).copied().unwrap_or(0);
                write_trak(out, &t.track, d, md, |out| self.write_tables(out, i, base));
            }
        });
    }

    /// The sample tables of track `index` (§8.5.1).
    fn write_tables(&self, out: &mut Vec<u8>, index: usize, base: u64) {
        let Some(t) = self.tracks.get(index) else {
            return;
        };
        // §8.6.1.2 Decoding Time to Sample Box, run-length coded.
        let mut stts: Vec<(u32, u32)> = Vec::new();
        for &(duration, _) in &t.samples {
            match stts.last_mut() {
                Some((count, delta)) if *delta == duration => *count += 1,
                _ => stts.push((1, duration)),
            }
        }
        write_full_box(out, b"stts", 0, 0, |out| {
            out.u32(stts.len() as u32);
            for (count, delta) in &stts {
                out.u32(*count);
                out.u32(*delta);
            }
        });
        // §8.6.2 Sync Sample Box; absent means every sample is a sync sample.
        if t.sync.len() != t.samples.len() {
            write_full_box(out, b"stss", 0, 0, |out| {
                out.u32(t.sync.len() as u32);
                for n in &t.sync {
                    out.u32(*n);
                }
            });
        }
        let chunks: Vec<&Chunk> = self.chunks.iter().filter(|c| c.track == index).collect();
        // §8.7.4 Sample To Chunk Box: a new entry wherever samples_per_chunk changes.
        let mut stsc: Vec<(u32, u32)> = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            if stsc.last().map(|e| e.1) != Some(c.samples) {
                stsc.push((i as u32 + 1, c.samples));
            }
        }
        write_full_box(out, b"stsc", 0, 0, |out| {
            out.u32(stsc.len() as u32);
            for (first_chunk, per_chunk) in &stsc {
                out.u32(*first_chunk);
                out.u32(*per_chunk);
                out.u32(1); // sample_description_index
            }
        });
        // §8.7.3.2 Sample Size Box.
        write_full_box(out, b"stsz", 0, 0, |out| {
            out.u32(0); // sample_size: sizes vary, see the table
            out.u32(t.samples.len() as u32);
            for (_, size) in &t.samples {
                out.u32(*size);
            }
        });
        // §8.7.5 Chunk Offset Box, 64-bit: exports may exceed 4 GiB.
        write_full_box(out, b"co64", 0, 0, |out| {
            out.u32(chunks.len() as u32);
            for c in &chunks {
                out.u64(base + c.offset);
            }
        });
    }
}
