//! Grouping a stream of NAL units into access units (ITU-T H.264 §7.4.1.2.3).

use bytes::Bytes;

use super::{nal_type, split_annexb, NAL_IDR, NAL_SLICE, NAL_SLICE_PART_A};

/// An access unit assembled by [`AccessUnitSplitter`]: the NAL units of one picture
/// (parameter sets, SEI and delimiters that precede it included), without start codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitAccessUnit {
    /// The NAL units in stream order, each with its header byte.
    pub nals: Vec<Bytes>,
    /// Whether the access unit holds an IDR picture (`nal_unit_type` 5).
    pub is_idr: bool,
}

impl SplitAccessUnit {
    /// The NAL units as 4-byte length-prefixed data, the form of [`crate::AccessUnit::data`].
    pub fn to_avcc(&self) -> Vec<u8> {
        super::avcc_from_nals(self.nals.iter().map(|n| &n[..]))
    }

    /// Whether the access unit holds a coded slice (a picture) at all; a stream may end
    /// with parameter sets or SEI only.
    pub fn has_picture(&self) -> bool {
        self.nals.iter().any(|n| is_vcl(nal_type(n)))
    }
}

/// Splits a stream of NAL units into access units.
///
/// Feed NAL units in decoding order with [`push_nal`](Self::push_nal) (or whole Annex B
/// chunks with [`push_annexb`](Self::push_annexb)); each call returns the *previous*
/// access unit once the NAL unit just pushed proves it complete. Call
/// [`flush`](Self::flush) at the end of the stream for the last one.
///
/// Boundaries follow §7.4.1.2.3: after the last VCL NAL unit of a primary coded picture, an
/// access unit delimiter, SPS, PPS, SEI or NAL unit of type 14..=18 starts a new access
/// unit, and so does the first VCL NAL unit of a new primary picture. For the latter this
/// checks `first_mb_in_slice == 0` and a change of `IdrPicFlag` instead of the full
/// §7.4.1.2.4 comparison, which is exact for streams without arbitrary slice order.
#[derive(Debug, Default)]
pub struct AccessUnitSplitter {
    nals: Vec<Bytes>,
    /// The pending access unit holds a VCL NAL unit; `Some(IdrPicFlag)` of the last one.
    last_vcl_idr: Option<bool>,
    is_idr: bool,
}

/// Bounds memory for hostile streams (a NAL unit flood with no picture boundary): an access
/// unit this long is emitted as is. Real pictures have at most a few hundred slices.
const MAX_NALS_PER_AU: usize = 4096;

fn is_vcl(t: Option<u8>) -> bool {
    matches!(t, Some(1..=5))
}

impl AccessUnitSplitter {
    /// A splitter at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pushes one NAL unit (header byte first, no start code or length prefix); returns the
    /// previous access unit if this NAL unit starts a new one. Empty NAL units are ignored.
    pub fn push_nal(&mut self, nal: &[u8]) -> Option<SplitAccessUnit> {
        if nal.is_empty() {
            return None;
        }
        self.push_nal_bytes(Bytes::copy_from_slice(nal))
    }

    /// Like [`push_nal`](Self::push_nal), taking ownership and avoiding a copy.
    pub fn push_nal_bytes(&mut self, nal: Bytes) -> Option<SplitAccessUnit> {
        let t = nal_type(&nal)?;
        let starts_new = match t {
            // §7.4.1.2.3: AUD, SPS, PPS, SEI, 14..=18 after the picture's last VCL NAL unit.
            6..=9 | 14..=18 => self.last_vcl_idr.is_some(),
            NAL_SLICE | NAL_IDR | NAL_SLICE_PART_A => {
                let idr = t == NAL_IDR;
                // first_mb_in_slice is the first ue(v) after the header byte; it is 0
                // exactly when its first bit is 1.
                let first_mb_zero = nal.get(1).is_some_and(|b| b & 0x80 != 0);
                match self.last_vcl_idr {
                    Some(prev_idr) => first_mb_zero || prev_idr != idr,
                    None => false,
                }
            }
            _ => false,
        };
        let out = if starts_new || self.nals.len() >= MAX_NALS_PER_AU {
            self.take()
        } else {
            None
        };
        if is_vcl(Some(t)) {
            // Partitions B and C (3, 4) carry no slice header; they keep the picture's flag.
            if t != 3 && t != 4 {
                self.last_vcl_idr = Some(t == NAL_IDR);
            } else if self.last_vcl_idr.is_none() {
                self.last_vcl_idr = Some(false);
            }
            self.is_idr |= t == NAL_IDR;
        }
        self.nals.push(nal);
        out
    }

    /// Splits an Annex B chunk into NAL units and pushes each; returns the access units
    /// completed. A NAL unit must not straddle two chunks: pass whole access units or the
    /// whole stream.
    pub fn push_annexb(&mut self, data: &[u8]) -> Vec<SplitAccessUnit> {
        split_annexb(data)
            .filter_map(|nal| self.push_nal(nal))
            .collect()
    }

    /// Ends the stream: returns the pending access unit, if any.
    pub fn flush(&mut self) -> Option<SplitAccessUnit> {
        self.take()
    }

    fn take(&mut self) -> Option<SplitAccessUnit> {
        self.last_vcl_idr = None;
        let is_idr = std::mem::take(&mut self.is_idr);
        if self.nals.is_empty() {
            return None;
        }
        Some(SplitAccessUnit {
            nals: std::mem::take(&mut self.nals),
            is_idr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(au: &SplitAccessUnit) -> Vec<u8> {
        au.nals.iter().filter_map(|n| nal_type(n)).collect()
    }

    fn split_all(file: &[u8]) -> Vec<SplitAccessUnit> {
        let mut s = AccessUnitSplitter::new();
        let mut aus = s.push_annexb(file);
        aus.extend(s.flush());
        aus
    }

    #[test]
    fn synthetic_stream() {
        let mut s = AccessUnitSplitter::new();
        // SPS, PPS, IDR slice 0, IDR slice 1 (first_mb != 0: first bit 0).
        assert_eq!(s.push_nal(&[0x67, 1]), None);
        assert_eq!(s.push_nal(&[0x68, 2]), None);
        assert_eq!(s.push_nal(&[0x65, 0x88]), None);
        assert_eq!(s.push_nal(&[0x65, 0x05]), None);
        // A non-IDR slice with first_mb_in_slice == 0 starts picture 2.
        let au = s.push_nal(&[0x41, 0x9a]).unwrap();
        assert_eq!(types(&au), vec![7, 8, 5, 5]);
        assert!(au.is_idr && au.has_picture());
        // SEI after a slice starts picture 3.
        let au = s.push_nal(&[0x06, 5]).unwrap();
        assert_eq!(types(&au), vec![1]);
        assert!(!au.is_idr);
        assert_eq!(s.push_nal(&[]), None);
        assert_eq!(s.push_nal(&[0x41, 0x80]), None);
        // An IDR slice after a non-IDR one is a new picture even with first_mb != 0.
        let au = s.push_nal(&[0x65, 0x05]).unwrap();
        assert_eq!(types(&au), vec![6, 1]);
        let au = s.flush().unwrap();
        assert_eq!(types(&au), vec![5]);
        assert!(au.is_idr);
        assert_eq!(s.flush(), None);
    }

    #[test]
    fn x264_stream_with_two_slices_per_picture() {
        let aus = split_all(include_bytes!("../../testdata/x264-160x120-2slices.h264"));
        let got: Vec<(Vec<u8>, bool)> = aus.iter().map(|a| (types(a), a.is_idr)).collect();
        assert_eq!(
            got,
            vec![
                (vec![7, 8, 6, 5, 5], true),
                (vec![1, 1], false),
                (vec![1, 1], false),
                (vec![7, 8, 5, 5], true),
                (vec![1, 1], false),
                (vec![1, 1], false),
            ]
        );
    }

    #[test]
    fn aud_stream_gives_same_pictures() {
        let plain = split_all(include_bytes!("../../testdata/x264-160x120-2slices.h264"));
        let aud = split_all(include_bytes!(
            "../../testdata/x264-160x120-2slices-aud.h264"
        ));
        assert_eq!(plain.len(), aud.len());
        for (p, a) in plain.iter().zip(&aud) {
            assert_eq!(nal_type(&a.nals[0]), Some(9), "each AU starts with its AUD");
            assert_eq!(&a.nals[1..], &p.nals[..]);
            assert_eq!(a.is_idr, p.is_idr);
        }
    }

    #[test]
    fn flood_without_pictures_is_bounded() {
        let mut s = AccessUnitSplitter::new();
        let mut emitted = 0;
        for _ in 0..10_000 {
            if let Some(au) = s.push_nal(&[0x0c, 0xff]) {
                assert!(au.nals.len() <= MAX_NALS_PER_AU);
                emitted += 1;
            }
        }
        assert_eq!(emitted, 2);
    }
}
