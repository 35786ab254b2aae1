//! H.264 bitstream helpers.

/// Iterator over length-prefixed NAL units.
pub struct AvccNalIter<'a> {
    rest: &'a [u8],
}

impl<'a> AvccNalIter<'a> {
    /// Iterates over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        AvccNalIter { rest: data }
    }
}

impl<'a> Iterator for AvccNalIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.len() < 4 {
            return None;
        }
        let len = u32::from_be_bytes([self.rest[0], self.rest[1], self.rest[2], self.rest[3]]) as usize;
        let body = self.rest.get(4..4 + len)?;
        self.rest = &self.rest[4 + len..];
        Some(body)
    }
}
