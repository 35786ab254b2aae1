//! Reading a fragmented file's `moov` back into [`Track`]s (for [`scan`](super::scan)).

use std::sync::Arc;

use bytes::Bytes;

use super::boxes::{
    corrupt_if_short, find_child, require_child, Children, Cursor, ReadError, ReadResult,
};
use super::{AudioTrack, Track, VideoTrack};
use crate::audio::AudioCodec;
use crate::h264;

/// More tracks than any camera stream has; bounds the work of hostile `moov`s.
const MAX_TRACKS: usize = 64;

/// §8.8.3 Track Extends Box: defaults for fragments that leave fields out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TrexDefaults {
    pub track_id: u32,
    pub duration: u32,
    pub size: u32,
    pub flags: u32,
}

/// What [`parse_moov`] found.
#[derive(Debug)]
pub(super) struct Moov {
    /// Tracks whose codec this module knows, in file order.
    pub tracks: Vec<Track>,
    /// One entry per track of the movie (fragments may only name these).
    pub trex: Vec<TrexDefaults>,
}

/// §8.2.1 Movie Box of a fragmented file: tracks and their `trex` defaults. A movie without
/// `mvex` (§8.8.1) is not fragmented, so it is no recording.
pub(super) fn parse_moov(body: &[u8]) -> ReadResult<Moov> {
    let mut tracks = Vec::new();
    let mut ids: Vec<u32> = Vec::new();
    let mut trex = Vec::new();
    let mut saw_mvex = false;
    for child in Children::new(body) {
        let (fourcc, b) = child?;
        match &fourcc {
            b"trak" => {
                if ids.len() >= MAX_TRACKS {
                    return Err(ReadError::Corrupt("too many tracks"));
                }
                let (id, track) = parse_trak(b)?;
                if ids.contains(&id) {
                    return Err(ReadError::Corrupt("duplicate track_ID"));
                }
                ids.push(id);
                tracks.extend(track);
            }
            b"mvex" => {
                saw_mvex = true;
                for c in Children::new(b) {
                    let (t, b) = c?;
                    if &t == b"trex" {
                        trex.push(corrupt_if_short(parse_trex(b), "short trex")?);
                    }
                }
            }
            _ => {}
        }
    }
    if !saw_mvex {
        return Err(ReadError::Corrupt(
            "moov without mvex: not a fragmented file",
        ));
    }
    // Fragments of a track need its trex (§8.8.3.1: "one for each track").
    trex.retain(|t| ids.contains(&t.track_id));
    Ok(Moov { tracks, trex })
}

fn parse_trex(body: &[u8]) -> ReadResult<TrexDefaults> {
    let mut c = Cursor::new(body);
    c.version_flags()?;
    let track_id = c.u32()?;
    c.u32()?; // default_sample_description_index
    Ok(TrexDefaults {
        track_id,
        duration: c.u32()?,
        size: c.u32()?,
        flags: c.u32()?,
    })
}

/// §8.3.1 Track Box: its track_ID, and the track if its codec is one we write.
fn parse_trak(body: &[u8]) -> ReadResult<(u32, Option<Track>)> {
    let tkhd = require_child(body, b"tkhd", "trak without tkhd")?;
    let track_id = corrupt_if_short(tkhd_track_id(tkhd), "short tkhd")?;
    if track_id == 0 {
        return Err(ReadError::Corrupt("track_ID 0"));
    }
    let mdia = require_child(body, b"mdia", "trak without mdia")?;
    let mdhd = require_child(mdia, b"mdhd", "mdia without mdhd")?;
    let timescale = corrupt_if_short(mdhd_timescale(mdhd), "short mdhd")?;
    if timescale == 0 {
        return Err(ReadError::Corrupt("timescale 0"));
    }
    let minf = require_child(mdia, b"minf", "mdia without minf")?;
    let stbl = require_child(minf, b"stbl", "minf without stbl")?;
    let stsd = require_child(stbl, b"stsd", "stbl without stsd")?;
    let mut c = Cursor::new(stsd);
    corrupt_if_short(c.version_flags(), "short stsd")?;
    let count = corrupt_if_short(c.u32(), "short stsd")?;
    if count == 0 {
        return Ok((track_id, None));
    }
    let Some(entry) = Children::new(c.rest()).next() else {
        return Err(ReadError::Corrupt("stsd entry missing"));
    };
    let (fourcc, entry) = entry?;
    let track = corrupt_if_short(
        sample_entry(&fourcc, entry, track_id, timescale),
        "short sample entry",
    )?;
    Ok((track_id, track))
}

/// §8.3.2: track_ID follows creation and modification times (32 or 64 bits each).
fn tkhd_track_id(body: &[u8]) -> ReadResult<u32> {
    let mut c = Cursor::new(body);
    let (version, _) = c.version_flags()?;
    c.skip(if version == 1 { 16 } else { 8 })?;
    c.u32()
}

/// §8.4.2: timescale follows creation and modification times (32 or 64 bits each).
fn mdhd_timescale(body: &[u8]) -> ReadResult<u32> {
    let mut c = Cursor::new(body);
    let (version, _) = c.version_flags()?;
    c.skip(if version == 1 { 16 } else { 8 })?;
    c.u32()
}

fn sample_entry(
    fourcc: &[u8; 4],
    body: &[u8],
    track_id: u32,
    timescale: u32,
) -> ReadResult<Option<Track>> {
    let mut c = Cursor::new(body);
    c.skip(8)?; // §8.5.2.2: reserved, data_reference_index
    match fourcc {
        b"avc1" | b"avc3" => {
            // §12.1.3 VisualSampleEntry fields up to and including pre_defined = -1.
            c.skip(70)?;
            let Some(avcc) = find_child(c.rest(), b"avcC")? else {
                return Ok(None);
            };
            let Some(params) = parse_avcc(avcc)? else {
                return Ok(None);
            };
            Ok(Some(Track::Video(VideoTrack {
                track_id,
                timescale,
                params: Arc::new(params),
            })))
        }
        b"hvc1" | b"hev1" => {
            c.skip(70)?; // as for avc1
            let Some(hvcc) = find_child(c.rest(), b"hvcC")? else {
                return Ok(None);
            };
            let Some(params) = super::hevc::parse_hvcc(hvcc)? else {
                return Ok(None);
            };
            Ok(Some(Track::Video(VideoTrack {
                track_id,
                timescale,
                params: Arc::new(params),
            })))
        }
        b"mp4a" | b"ulaw" | b"alaw" => {
            // §12.2.3 AudioSampleEntry; QuickTime's version 1 and 2 sound descriptions
            // (first reserved field) append 16 and 36 bytes before the child boxes.
            let qt_version = c.u16()?;
            c.skip(6)?;
            let channels = c.u16()?;
            c.skip(10)?; // samplesize, pre_defined, reserved, samplerate
            match qt_version {
                1 => c.skip(16)?,
                2 => c.skip(36)?,
                _ => {}
            }
            let codec = match fourcc {
                b"ulaw" => AudioCodec::Pcmu,
                b"alaw" => AudioCodec::Pcma,
                _ => {
                    let Some(esds) = find_child(c.rest(), b"esds")? else {
                        return Ok(None);
                    };
                    match parse_esds(esds)? {
                        Some(config) => AudioCodec::Aac { config },
                        None => return Ok(None),
                    }
                }
            };
            Ok(Some(Track::Audio(AudioTrack {
                track_id,
                timescale,
                channels,
                codec,
            })))
        }
        _ => Ok(None),
    }
}

/// ISO/IEC 14496-15 §5.3.3.1 AVCDecoderConfigurationRecord: the first SPS and PPS, made into
/// [`StreamParams`](crate::StreamParams). `None` for records we cannot use (NAL length
/// fields other than 4 bytes, parameter sets that do not parse).
fn parse_avcc(body: &[u8]) -> ReadResult<Option<crate::StreamParams>> {
    let mut c = Cursor::new(body);
    if c.u8()? != 1 {
        return Ok(None); // configurationVersion
    }
    c.skip(3)?;
    let length_size_minus_one = c.u8()? & 3;
    let sps_count = c.u8()? & 0x1f;
    let mut sps = None;
    for _ in 0..sps_count {
        let len = usize::from(c.u16()?);
        let nal = c.bytes(len)?;
        sps.get_or_insert(nal);
    }
    let pps_count = c.u8()?;
    let mut pps = None;
    for _ in 0..pps_count {
        let len = usize::from(c.u16()?);
        let nal = c.bytes(len)?;
        pps.get_or_insert(nal);
    }
    let (Some(sps), Some(pps)) = (sps, pps) else {
        return Ok(None);
    };
    if length_size_minus_one != 3 {
        return Ok(None);
    }
    Ok(h264::stream_params(sps, pps).ok())
}

/// ISO/IEC 14496-14 §5.6 `esds` → ISO/IEC 14496-1 §7.2.6.5 ES_Descriptor →
/// §7.2.6.6 DecoderConfigDescriptor → §7.2.6.7 DecoderSpecificInfo, the
/// AudioSpecificConfig. `None` unless the object type is MPEG-4 or MPEG-2 AAC.
fn parse_esds(body: &[u8]) -> ReadResult<Option<Bytes>> {
    let mut c = Cursor::new(body);
    c.version_flags()?;
    let Some(es) = find_descriptor(c.rest(), 0x03)? else {
        return Ok(None);
    };
    let mut c = Cursor::new(es);
    c.skip(2)?; // ES_ID
    let flags = c.u8()?;
    if flags & 0x80 != 0 {
        c.skip(2)?; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        let len = c.u8()?;
        c.skip(usize::from(len))?; // URLstring
    }
    if flags & 0x20 != 0 {
        c.skip(2)?; // OCR_ES_Id
    }
    let Some(dcd) = find_descriptor(c.rest(), 0x04)? else {
        return Ok(None);
    };
    let mut c = Cursor::new(dcd);
    let object_type = c.u8()?;
    if !matches!(object_type, 0x40 | 0x66..=0x68) {
        return Ok(None);
    }
    c.skip(12)?; // streamType, bufferSizeDB, maxBitrate, avgBitrate
    Ok(find_descriptor(c.rest(), 0x05)?.map(Bytes::copy_from_slice))
}

/// ISO/IEC 14496-1 §8.3.3: walks tag + expandable-size descriptors for `tag`.
fn find_descriptor(mut data: &[u8], tag: u8) -> ReadResult<Option<&[u8]>> {
    while !data.is_empty() {
        let mut c = Cursor::new(data);
        let t = c.u8()?;
        let mut len = 0usize;
        for i in 0..4 {
            let b = c.u8()?;
            len = len << 7 | usize::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
            if i == 3 {
                return Err(ReadError::Corrupt("descriptor size longer than 4 bytes"));
            }
        }
        let body = c.bytes(len)?;
        if t == tag {
            return Ok(Some(body));
        }
        data = c.rest();
    }
    Ok(None)
}
