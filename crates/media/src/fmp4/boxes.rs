//! Box writing with size back-patching, and bounds-checked reading
//! (ISO/IEC 14496-12 §4.2: `Box` and `FullBox`).

/// Appends big-endian integers to a byte vector.
pub(super) trait Put {
    fn u8(&mut self, v: u8);
    fn u16(&mut self, v: u16);
    fn u32(&mut self, v: u32);
    fn u64(&mut self, v: u64);
    fn zeros(&mut self, n: usize);
}

impl Put for Vec<u8> {
    fn u8(&mut self, v: u8) {
        self.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn zeros(&mut self, n: usize) {
        self.resize(self.len() + n, 0);
    }
}

/// §4.2: writes a box of type `fourcc` whose body `body` appends, then patches its 32-bit
/// size. Header boxes stay far below 4 GiB; `mdat` headers are written separately.
pub(super) fn write_box(out: &mut Vec<u8>, fourcc: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.u32(0);
    out.extend_from_slice(fourcc);
    body(out);
    let size = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    if let Some(slot) = out.get_mut(start..start + 4) {
        slot.copy_from_slice(&size.to_be_bytes());
    }
}

/// §4.2: a `FullBox`, i.e. a box whose body starts with an 8-bit version and 24-bit flags.
pub(super) fn write_full_box(
    out: &mut Vec<u8>,
    fourcc: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    write_box(out, fourcc, |out| {
        out.u32(u32::from(version) << 24 | (flags & 0x00ff_ffff));
        body(out);
    });
}

/// §4.2: an `mdat` header for `payload_len` bytes of media; 16 bytes with `largesize` when
/// the box would not fit a 32-bit size, 8 bytes otherwise. Returns the header length.
pub(super) fn write_mdat_header(out: &mut Vec<u8>, payload_len: u64) -> usize {
    match u32::try_from(payload_len + 8) {
        Ok(size) => {
            out.u32(size);
            out.extend_from_slice(b"mdat");
            8
        }
        Err(_) => {
            out.u32(1);
            out.extend_from_slice(b"mdat");
            out.u64(payload_len.saturating_add(16));
            16
        }
    }
}

/// The unity transformation matrix of `mvhd` and `tkhd` (§8.2.2.3, §8.3.2.3).
pub(super) fn write_unity_matrix(out: &mut Vec<u8>) {
    for v in [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000u32] {
        out.u32(v);
    }
}

/// Why parsing stopped: the data ends inside a box, or the box is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReadError {
    /// More bytes are needed.
    Truncated,
    /// The bytes cannot be what they claim to be.
    Corrupt(&'static str),
}

pub(super) type ReadResult<T> = Result<T, ReadError>;

/// A box header (§4.2) as found in the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BoxHeader {
    pub fourcc: [u8; 4],
    /// Length of the header: 8, or 16 with `largesize`.
    pub header_len: u64,
    /// Total box length, header included; `None` for size 0 ("extends to the end").
    pub size: Option<u64>,
}

/// §4.2: parses the box header at the start of `data`.
pub(super) fn read_box_header(data: &[u8]) -> ReadResult<BoxHeader> {
    let mut c = Cursor::new(data);
    let size = c.u32()?;
    let fourcc = c.fourcc()?;
    let (header_len, size) = match size {
        0 => (8, None),
        1 => {
            let large = c.u64()?;
            if large < 16 {
                return Err(ReadError::Corrupt("largesize below header length"));
            }
            (16, Some(large))
        }
        2..=7 => return Err(ReadError::Corrupt("box size below header length")),
        n => (8, Some(u64::from(n))),
    };
    let header_len = if &fourcc == b"uuid" {
        // §4.2: a 16-byte extended type follows; we never need it, only to skip the box.
        c.skip(16)?;
        header_len + 16
    } else {
        header_len
    };
    if size.is_some_and(|s| s < header_len) {
        return Err(ReadError::Corrupt("box size below header length"));
    }
    Ok(BoxHeader {
        fourcc,
        header_len,
        size,
    })
}

/// Iterates over the child boxes packed in `data` (a container box's body), yielding each
/// child's type and body. A child that overruns its parent is an error: inside a complete
/// parent that is corruption, not truncation.
pub(super) struct Children<'a> {
    rest: &'a [u8],
}

impl<'a> Children<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Children { rest: data }
    }
}

impl<'a> Iterator for Children<'a> {
    type Item = ReadResult<([u8; 4], &'a [u8])>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = child(self.rest);
        match item {
            Ok((fourcc, body, rest)) => {
                self.rest = rest;
                Some(Ok((fourcc, body)))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(match e {
                    ReadError::Truncated => ReadError::Corrupt("child box overruns its parent"),
                    c => c,
                }))
            }
        }
    }
}

fn child(data: &[u8]) -> ReadResult<([u8; 4], &[u8], &[u8])> {
    let h = read_box_header(data)?;
    let size = h.size.unwrap_or(data.len() as u64);
    let size = usize::try_from(size).map_err(|_| ReadError::Truncated)?;
    let header_len = h.header_len as usize;
    if size < header_len {
        return Err(ReadError::Corrupt("box size below header length"));
    }
    let body = data.get(header_len..size).ok_or(ReadError::Truncated)?;
    let rest = data.get(size..).unwrap_or_default();
    Ok((h.fourcc, body, rest))
}

/// Finds the first child box of type `fourcc` in a container body.
pub(super) fn find_child<'a>(data: &'a [u8], fourcc: &[u8; 4]) -> ReadResult<Option<&'a [u8]>> {
    for c in Children::new(data) {
        let (t, body) = c?;
        if &t == fourcc {
            return Ok(Some(body));
        }
    }
    Ok(None)
}

/// Like [`find_child`], for a box that must be there.
pub(super) fn require_child<'a>(
    data: &'a [u8],
    fourcc: &[u8; 4],
    what: &'static str,
) -> ReadResult<&'a [u8]> {
    find_child(data, fourcc)?.ok_or(ReadError::Corrupt(what))
}

/// Bounds-checked big-endian reader over a box body. Running off the end is corruption,
/// since callers only hand it complete boxes.
pub(super) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    pub(super) fn bytes(&mut self, n: usize) -> ReadResult<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(ReadError::Truncated)?;
        let s = self.data.get(self.pos..end).ok_or(ReadError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> ReadResult<[u8; N]> {
        let mut a = [0; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    pub(super) fn u8(&mut self) -> ReadResult<u8> {
        Ok(self.array::<1>()?[0])
    }
    pub(super) fn u16(&mut self) -> ReadResult<u16> {
        self.array().map(u16::from_be_bytes)
    }
    pub(super) fn u32(&mut self) -> ReadResult<u32> {
        self.array().map(u32::from_be_bytes)
    }
    pub(super) fn u64(&mut self) -> ReadResult<u64> {
        self.array().map(u64::from_be_bytes)
    }
    pub(super) fn fourcc(&mut self) -> ReadResult<[u8; 4]> {
        self.array()
    }
    pub(super) fn skip(&mut self, n: usize) -> ReadResult<()> {
        self.bytes(n).map(|_| ())
    }
    /// §4.2 FullBox: version and flags.
    pub(super) fn version_flags(&mut self) -> ReadResult<(u8, u32)> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }
    pub(super) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }
    pub(super) fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }
}

/// Inside a complete box, running out of bytes means the box lies about its contents.
pub(super) fn corrupt_if_short<T>(r: ReadResult<T>, what: &'static str) -> ReadResult<T> {
    r.map_err(|e| match e {
        ReadError::Truncated => ReadError::Corrupt(what),
        c => c,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_back_patched() {
        let mut out = vec![0xaa];
        write_box(&mut out, b"moov", |out| {
            write_full_box(out, b"mvhd", 1, 0x020001, |out| out.u16(7));
        });
        assert_eq!(
            out,
            [
                0xaa, 0, 0, 0, 22, b'm', b'o', b'o', b'v', 0, 0, 0, 14, b'm', b'v', b'h', b'd', 1,
                2, 0, 1, 0, 7
            ]
        );
    }

    #[test]
    fn headers_small_large_and_zero() {
        let mut out = Vec::new();
        assert_eq!(write_mdat_header(&mut out, 100), 8);
        assert_eq!(
            read_box_header(&out),
            Ok(BoxHeader {
                fourcc: *b"mdat",
                header_len: 8,
                size: Some(108)
            })
        );
        out.clear();
        assert_eq!(write_mdat_header(&mut out, 1 << 33), 16);
        assert_eq!(read_box_header(&out).unwrap().size, Some((1 << 33) + 16));
        assert_eq!(read_box_header(&out[..12]), Err(ReadError::Truncated));
        assert_eq!(read_box_header(b"\0\0\0\0free").unwrap().size, None);
        assert!(matches!(
            read_box_header(b"\0\0\0\x05free"),
            Err(ReadError::Corrupt(_))
        ));
        assert!(matches!(
            read_box_header(b"\0\0\0\x01mdat\0\0\0\0\0\0\0\x0f"),
            Err(ReadError::Corrupt(_))
        ));
    }

    #[test]
    fn children_stop_at_overrun() {
        let data = b"\0\0\0\x09abcdX\0\0\0\x10efgh";
        let mut it = Children::new(data);
        assert_eq!(it.next(), Some(Ok((*b"abcd", &b"X"[..]))));
        assert!(matches!(it.next(), Some(Err(ReadError::Corrupt(_)))));
        assert_eq!(it.next(), None);
    }
}
