//! The initialization segment (`ftyp` + `moov`) of a fragmented MP4, and the track
//! description boxes it shares with progressive exports.

use h264_reader::nal::sps::{ChromaFormat, SeqParameterSet};
use h264_reader::rbsp::{decode_nal, BitReader};

use super::boxes::{write_box, write_full_box, write_unity_matrix, Put};
use super::{AudioTrack, Track, VideoTrack};
use crate::audio::AudioCodec;
use crate::{Codec, StreamParams};

/// Timescale of `mvhd` and `tkhd` durations: milliseconds, as ffmpeg writes.
pub(super) const MOVIE_TIMESCALE: u32 = 1000;

/// §8.8.3.1 sample flags of a sync sample: `sample_depends_on = 2` (depends on no other
/// sample), `sample_is_non_sync_sample = 0`.
pub(super) const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// §8.8.3.1 sample flags of a non-sync sample: `sample_depends_on = 1`,
/// `sample_is_non_sync_sample = 1`.
pub(super) const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// ISO 639-2/T "und" packed as three 5-bit letters (§8.4.2.3).
const LANGUAGE_UND: u16 = 0x55c4;

/// Writes the initialization segment of a fragmented MP4: `ftyp` (§4.3) and `moov` (§8.2.1)
/// with one `trak` per track (sample description, empty sample tables) and `mvex` (§8.8.1)
/// announcing that the samples follow in movie fragments.
///
/// Track ids must be non-zero and unique; [`Track`] values built by the recorder are.
pub fn write_init_segment(out: &mut Vec<u8>, tracks: &[Track]) {
    write_ftyp(
        out,
        b"iso6",
        0,
        &[b"iso6", b"isom", b"iso5", b"dash", b"mp41"],
    );
    write_box(out, b"moov", |out| {
        write_mvhd(out, 0, tracks);
        for t in tracks {
            write_trak(out, t, 0, 0, write_empty_sample_tables);
        }
        // §8.8.1 mvex, §8.8.3 trex: every fragment's trun carries explicit durations,
        // sizes and flags, so the defaults stay zero.
        write_box(out, b"mvex", |out| {
            for t in tracks {
                write_full_box(out, b"trex", 0, 0, |out| {
                    out.u32(t.track_id());
                    out.u32(1); // default_sample_description_index
                    out.u32(0); // default_sample_duration
                    out.u32(0); // default_sample_size
                    out.u32(0); // default_sample_flags
                });
            }
        });
    });
}

/// §4.3 File Type Box.
pub(super) fn write_ftyp(out: &mut Vec<u8>, major: &[u8; 4], minor: u32, compatible: &[&[u8; 4]]) {
    write_box(out, b"ftyp", |out| {
        out.extend_from_slice(major);
        out.u32(minor);
        for b in compatible {
            out.extend_from_slice(*b);
        }
    });
}

/// §8.2.2 Movie Header Box; `duration` in [`MOVIE_TIMESCALE`] units.
pub(super) fn write_mvhd(out: &mut Vec<u8>, duration: u64, tracks: &[Track]) {
    let next_track_id = tracks
        .iter()
        .map(Track::track_id)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    let v1 = duration > u64::from(u32::MAX);
    write_full_box(out, b"mvhd", u8::from(v1), 0, |out| {
        write_times(out, v1, MOVIE_TIMESCALE, duration);
        out.u32(0x0001_0000); // rate 1.0
        out.u16(0x0100); // volume 1.0
        out.zeros(10); // reserved
        write_unity_matrix(out);
        out.zeros(24); // pre_defined
        out.u32(next_track_id);
    });
}

/// creation_time, modification_time (zero: unknown), then timescale and duration in the
/// version-0 (32-bit) or version-1 (64-bit) layout shared by mvhd and mdhd.
fn write_times(out: &mut Vec<u8>, v1: bool, timescale: u32, duration: u64) {
    if v1 {
        out.u64(0);
        out.u64(0);
        out.u32(timescale);
        out.u64(duration);
    } else {
        out.u32(0);
        out.u32(0);
        out.u32(timescale);
        out.u32(duration as u32);
    }
}

/// §8.3.1 Track Box with everything down to the Sample Table Box, whose tables
/// (everything after `stsd`) `tables` writes. `media_duration` is in the track's timescale,
/// `movie_duration` in [`MOVIE_TIMESCALE`] units.
pub(super) fn write_trak(
    out: &mut Vec<u8>,
    track: &Track,
    media_duration: u64,
    movie_duration: u64,
    tables: impl FnOnce(&mut Vec<u8>),
) {
    write_box(out, b"trak", |out| {
        write_tkhd(out, track, movie_duration);
        write_box(out, b"mdia", |out| {
            // §8.4.2 Media Header Box.
            let v1 = media_duration > u64::from(u32::MAX);
            write_full_box(out, b"mdhd", u8::from(v1), 0, |out| {
                write_times(out, v1, track.timescale(), media_duration);
                out.u16(LANGUAGE_UND);
                out.u16(0); // pre_defined
            });
            // §8.4.3 Handler Reference Box.
            let (handler, name): (&[u8; 4], &[u8]) = match track {
                Track::Video(_) => (b"vide", b"VideoHandler\0"),
                Track::Audio(_) => (b"soun", b"SoundHandler\0"),
            };
            write_full_box(out, b"hdlr", 0, 0, |out| {
                out.u32(0); // pre_defined
                out.extend_from_slice(handler);
                out.zeros(12); // reserved
                out.extend_from_slice(name);
            });
            write_box(out, b"minf", |out| {
                match track {
                    // §12.1.2 Video Media Header Box; flags 1 as the standard requires.
                    Track::Video(_) => write_full_box(out, b"vmhd", 0, 1, |out| out.zeros(8)),
                    // §12.2.2 Sound Media Header Box: balance 0, reserved.
                    Track::Audio(_) => write_full_box(out, b"smhd", 0, 0, |out| out.u32(0)),
                }
                // §8.7.1 Data Information Box, §8.7.2 Data Reference Box: one `url ` entry
                // with flags 1, "media data in this file".
                write_box(out, b"dinf", |out| {
                    write_full_box(out, b"dref", 0, 0, |out| {
                        out.u32(1);
                        write_full_box(out, b"url ", 0, 1, |_| {});
                    });
                });
                // §8.5.1 Sample Table Box.
                write_box(out, b"stbl", |out| {
                    write_stsd(out, track);
                    tables(out);
                });
            });
        });
    });
}

/// §8.3.2 Track Header Box; flags 3 = track_enabled | track_in_movie.
fn write_tkhd(out: &mut Vec<u8>, track: &Track, movie_duration: u64) {
    let v1 = movie_duration > u64::from(u32::MAX);
    write_full_box(out, b"tkhd", u8::from(v1), 3, |out| {
        if v1 {
            out.u64(0);
            out.u64(0);
        } else {
            out.u32(0);
            out.u32(0);
        }
        out.u32(track.track_id());
        out.u32(0); // reserved
        if v1 {
            out.u64(movie_duration);
        } else {
            out.u32(movie_duration as u32);
        }
        out.zeros(8); // reserved
        out.u16(0); // layer
        out.u16(0); // alternate_group
        out.u16(if matches!(track, Track::Audio(_)) {
            0x0100
        } else {
            0
        }); // volume
        out.u16(0); // reserved
        write_unity_matrix(out);
        let (w, h) = match track {
            Track::Video(v) => (v.params.width, v.params.height),
            Track::Audio(_) => (0, 0),
        };
        // Width and height are 16.16 fixed point.
        out.u32(w.min(0xffff) << 16);
        out.u32(h.min(0xffff) << 16);
    });
}

/// The sample tables of a fragmented file's `moov`: all empty (§8.8.1), the samples live in
/// the fragments. §8.6.1.2 stts, §8.7.4 stsc, §8.7.3.2 stsz, §8.7.5 stco.
fn write_empty_sample_tables(out: &mut Vec<u8>) {
    write_full_box(out, b"stts", 0, 0, |out| out.u32(0));
    write_full_box(out, b"stsc", 0, 0, |out| out.u32(0));
    write_full_box(out, b"stsz", 0, 0, |out| {
        out.u32(0); // sample_size
        out.u32(0); // sample_count
    });
    write_full_box(out, b"stco", 0, 0, |out| out.u32(0));
}

/// §8.5.2 Sample Description Box with the track's one sample entry.
fn write_stsd(out: &mut Vec<u8>, track: &Track) {
    write_full_box(out, b"stsd", 0, 0, |out| {
        out.u32(1); // entry_count
        match track {
            Track::Video(v) => match v.params.codec {
                Codec::H264 => {
                    write_visual_entry(out, b"avc1", v, |out| write_avcc(out, &v.params))
                }
                Codec::H265 => write_visual_entry(out, b"hvc1", v, |out| {
                    super::hevc::write_hvcc(out, &v.params)
                }),
            },
            Track::Audio(a) => write_audio_entry(out, a),
        }
    });
}

/// §8.5.2.2 SampleEntry: six reserved bytes and data_reference_index 1 (the `url ` entry).
fn write_sample_entry_start(out: &mut Vec<u8>) {
    out.zeros(6);
    out.u16(1);
}

/// §12.1.3 VisualSampleEntry `avc1` (ISO/IEC 14496-15 §5.4.2.1) or `hvc1` (§8.4.1.1),
/// with its decoder configuration box, which `config` writes.
fn write_visual_entry(
    out: &mut Vec<u8>,
    fourcc: &[u8; 4],
    v: &VideoTrack,
    config: impl FnOnce(&mut Vec<u8>),
) {
    write_box(out, fourcc, |out| {
        write_sample_entry_start(out);
        out.zeros(16); // pre_defined, reserved, pre_defined[3]
        out.u16(v.params.width.min(0xffff) as u16);
        out.u16(v.params.height.min(0xffff) as u16);
        out.u32(0x0048_0000); // horizresolution 72 dpi
        out.u32(0x0048_0000); // vertresolution 72 dpi
        out.u32(0); // reserved
        out.u16(1); // frame_count
        out.zeros(32); // compressorname (empty Pascal string)
        out.u16(0x0018); // depth
        out.u16(0xffff); // pre_defined = -1
        config(out);
    });
}

/// ISO/IEC 14496-15 §5.3.3.1 AVCDecoderConfigurationRecord in an `avcC` box.
fn write_avcc(out: &mut Vec<u8>, params: &StreamParams) {
    write_box(out, b"avcC", |out| {
        let [profile, compat, level] = params.profile_level_id();
        out.u8(1); // configurationVersion
        out.u8(profile);
        out.u8(compat);
        out.u8(level);
        out.u8(0xfc | 3); // reserved '111111', lengthSizeMinusOne = 3
        let sps = u16::try_from(params.sps.len()).ok().filter(|&n| n > 0);
        out.u8(0xe0 | u8::from(sps.is_some())); // reserved '111', numOfSequenceParameterSets
        if let Some(n) = sps {
            out.u16(n);
            out.extend_from_slice(&params.sps);
        }
        let pps = u16::try_from(params.pps.len()).ok().filter(|&n| n > 0);
        out.u8(u8::from(pps.is_some())); // numOfPictureParameterSets
        if let Some(n) = pps {
            out.u16(n);
            out.extend_from_slice(&params.pps);
        }
        // §5.3.3.1.2: these profiles carry chroma format and bit depths as well.
        if matches!(profile, 100 | 110 | 122 | 144) {
            let (chroma, luma_depth, chroma_depth) = chroma_info(&params.sps);
            out.u8(0xfc | chroma);
            out.u8(0xf8 | luma_depth);
            out.u8(0xf8 | chroma_depth);
            out.u8(0); // numOfSequenceParameterSetExt
        }
    });
}

/// `chroma_format_idc`, `bit_depth_luma_minus8`, `bit_depth_chroma_minus8` of an SPS;
/// 4:2:0 8-bit (by far the most common) if the SPS does not parse.
fn chroma_info(sps: &[u8]) -> (u8, u8, u8) {
    let parsed = decode_nal(sps)
        .ok()
        .and_then(|rbsp| SeqParameterSet::from_bits(BitReader::new(&*rbsp)).ok());
    match parsed {
        Some(s) => {
            let c = &s.chroma_info;
            (
                match c.chroma_format {
                    ChromaFormat::Monochrome => 0,
                    ChromaFormat::YUV422 => 2,
                    ChromaFormat::YUV444 => 3,
                    _ => 1,
                },
                c.bit_depth_luma_minus8 & 7,
                c.bit_depth_chroma_minus8 & 7,
            )
        }
        None => (1, 0, 0),
    }
}

/// §12.2.3 AudioSampleEntry: `mp4a` + `esds` for AAC (ISO/IEC 14496-14 §5.6), or the
/// QuickTime `ulaw`/`alaw` entries that ffmpeg reads for G.711 (no extension boxes).
fn write_audio_entry(out: &mut Vec<u8>, a: &AudioTrack) {
    let fourcc = match a.codec {
        AudioCodec::Aac { .. } => b"mp4a",
        AudioCodec::Pcmu => b"ulaw",
        AudioCodec::Pcma => b"alaw",
    };
    write_box(out, fourcc, |out| {
        write_sample_entry_start(out);
        out.zeros(8); // reserved
        out.u16(a.channels);
        out.u16(16); // samplesize
        out.u16(0); // pre_defined
        out.u16(0); // reserved
                    // samplerate is 16.16 fixed point; rates above 65535 Hz do not fit and are
                    // taken from mdhd's timescale by readers.
        out.u32(if a.timescale <= 0xffff {
            a.timescale << 16
        } else {
            0
        });
        if let AudioCodec::Aac { config } = &a.codec {
            write_esds(out, a.track_id, config);
        }
    });
}

/// ISO/IEC 14496-14 §5.6 `esds`: an ES_Descriptor (ISO/IEC 14496-1 §7.2.6.5) holding a
/// DecoderConfigDescriptor (§7.2.6.6: objectTypeIndication 0x40 = MPEG-4 audio,
/// streamType 5 = audio) with the AudioSpecificConfig, and an SLConfigDescriptor
/// (§7.3.2.3.1, predefined 2 as MP4 files require).
fn write_esds(out: &mut Vec<u8>, track_id: u32, config: &[u8]) {
    let mut dsi = Vec::new();
    write_descriptor(&mut dsi, 0x05, config);
    let mut dcd = vec![0x40, 0x15]; // objectTypeIndication; streamType << 2 | upStream 0 | reserved 1
    dcd.zeros(3); // bufferSizeDB
    dcd.u32(0); // maxBitrate (unknown)
    dcd.u32(0); // avgBitrate (unknown)
    dcd.extend_from_slice(&dsi);
    let mut es = Vec::new();
    es.u16(track_id as u16); // ES_ID
    es.u8(0); // no stream dependence, URL or OCR stream
    write_descriptor(&mut es, 0x04, &dcd);
    write_descriptor(&mut es, 0x06, &[0x02]);
    write_full_box(out, b"esds", 0, 0, |out| write_descriptor(out, 0x03, &es));
}

/// ISO/IEC 14496-1 §8.3.3: a descriptor tag and its "expandable" size, seven bits per
/// byte with the high bit as continuation flag.
fn write_descriptor(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.u8(tag);
    let len = body.len().min(0x0fff_ffff) as u32;
    let mut shift = 21;
    while shift > 0 && len >> shift == 0 {
        shift -= 7;
    }
    while shift > 0 {
        out.u8(0x80 | ((len >> shift) & 0x7f) as u8);
        shift -= 7;
    }
    out.u8((len & 0x7f) as u8);
    out.extend_from_slice(body.get(..len as usize).unwrap_or(body));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_sizes_are_expandable() {
        let mut out = Vec::new();
        write_descriptor(&mut out, 5, &[1, 2]);
        assert_eq!(out, [5, 2, 1, 2]);
        out.clear();
        write_descriptor(&mut out, 4, &[0; 200]);
        assert_eq!(&out[..3], [4, 0x81, 0x48]);
        assert_eq!(out.len(), 203);
    }

    #[test]
    fn sample_flags_match_14496_12() {
        // is_non_sync_sample is bit 16; sample_depends_on bits 24..26.
        assert_eq!(SYNC_SAMPLE_FLAGS & 0x0001_0000, 0);
        assert_ne!(NON_SYNC_SAMPLE_FLAGS & 0x0001_0000, 0);
        assert_eq!(SYNC_SAMPLE_FLAGS >> 24 & 3, 2);
        assert_eq!(NON_SYNC_SAMPLE_FLAGS >> 24 & 3, 1);
    }
}
