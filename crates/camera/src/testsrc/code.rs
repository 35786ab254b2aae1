//! The machine-readable code burned into test-pattern frames.
//!
//! 120 bits, most significant first: an 8-bit marker, the 64-bit capture time (µs since
//! the Unix epoch), the 32-bit frame counter and a CRC-16/CCITT-FALSE of the 13 bytes
//! before it. Each bit is one square block of luma at the top of the frame (black 16 for
//! 0, white 235 for 1), left to right and wrapping onto further rows. Blocks are 16x16
//! from 640 pixels wide up, 8x8 below; the number of blocks per row is `width / block`.
//!
//! Blocks that large survive lossy H.264 coding: the reader averages the centre of each
//! block and thresholds at mid-grey. Because a 2:1 downscale of a frame keeps the same
//! blocks per row at half the block size, the reader also tries half and quarter blocks,
//! so the code of a main stream can be read from its sub stream too.

/// Marker byte: lets the reader reject a picture without a code before the CRC check.
const MARKER: u8 = 0xB4;
/// Bytes in one code: marker, capture time, counter, CRC.
const CODE_BYTES: usize = 1 + 8 + 4 + 2;
/// Bits in one code.
pub(crate) const CODE_BITS: usize = CODE_BYTES * 8;
const BLACK: u8 = 16;
const WHITE: u8 = 235;

/// What a frame's code says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BurnedCode {
    /// Wall-clock time of capture, µs since the Unix epoch.
    pub capture_us: i64,
    /// Frame counter: increases by one per emitted frame.
    pub counter: u32,
}

/// Block size (pixels) used when rendering at `width`.
pub(crate) fn block_size(width: u32) -> usize {
    if width >= 640 {
        16
    } else {
        8
    }
}

/// Height in pixels of the code band when rendered at `width`.
pub(crate) fn band_height(width: u32) -> usize {
    let bs = block_size(width);
    let per_row = (width as usize / bs).max(1);
    CODE_BITS.div_ceil(per_row) * bs
}

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor).
pub(crate) fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn code_bytes(code: BurnedCode) -> [u8; CODE_BYTES] {
    let mut out = [0u8; CODE_BYTES];
    out[0] = MARKER;
    out[1..9].copy_from_slice(&code.capture_us.to_be_bytes());
    out[9..13].copy_from_slice(&code.counter.to_be_bytes());
    let crc = crc16(&out[..13]);
    out[13..].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Draws the code into the top of a luma plane of `width` x `height` (tightly packed).
pub(crate) fn draw_code(y_plane: &mut [u8], width: u32, height: u32, code: BurnedCode) {
    let bytes = code_bytes(code);
    let bs = block_size(width);
    let stride = width as usize;
    let per_row = (stride / bs).max(1);
    let rows = band_height(width).min(height as usize) / bs;
    for block in 0..per_row * rows {
        let level = match bytes.get(block / 8) {
            Some(b) if b & (0x80 >> (block % 8)) != 0 => WHITE,
            Some(_) => BLACK,
            // Past the code: a neutral grey the reader never looks at.
            None => 128,
        };
        let (bx, by) = ((block % per_row) * bs, (block / per_row) * bs);
        for py in by..by + bs {
            let start = py * stride + bx;
            if let Some(span) = y_plane.get_mut(start..start + bs) {
                span.fill(level);
            }
        }
    }
    // The strip right of the last full block (when width is not a multiple of the block).
    let rest = stride - per_row * bs;
    if rest > 0 {
        for py in 0..rows * bs {
            let start = py * stride + per_row * bs;
            if let Some(span) = y_plane.get_mut(start..start + rest) {
                span.fill(128);
            }
        }
    }
}

/// Reads the code from a decoded luma plane (`stride` bytes per row). Returns `None` when
/// no block layout yields a code whose marker and CRC check out (no code, or damaged).
pub fn read_code(y_plane: &[u8], stride: usize, width: u32, height: u32) -> Option<BurnedCode> {
    if stride < width as usize {
        return None;
    }
    // Layouts to try: blocks per row is always `width / block`, so a 2:1 or 4:1 downscale
    // of a wider frame reads as 8- or 4-pixel blocks at the smaller width.
    let rendered = block_size(width);
    [rendered, 16, 8, 4]
        .into_iter()
        .find_map(|bs| read_layout(y_plane, stride, height as usize, bs, width as usize / bs))
}

fn read_layout(
    y_plane: &[u8],
    stride: usize,
    height: usize,
    bs: usize,
    per_row: usize,
) -> Option<BurnedCode> {
    if bs < 4 || per_row < 8 || per_row * bs > stride {
        return None;
    }
    if CODE_BITS.div_ceil(per_row) * bs > height {
        return None;
    }
    let mut bytes = [0u8; CODE_BYTES];
    // Average the central half of the block: its edges carry the coding artefacts.
    let (off, span) = (bs / 4, bs / 2);
    for bit in 0..CODE_BITS {
        let (bx, by) = ((bit % per_row) * bs + off, (bit / per_row) * bs + off);
        let mut sum = 0u32;
        for py in by..by + span {
            let row = y_plane.get(py * stride + bx..py * stride + bx + span)?;
            sum += row.iter().map(|&p| u32::from(p)).sum::<u32>();
        }
        if sum > 128 * (span * span) as u32 {
            bytes[bit / 8] |= 0x80 >> (bit % 8);
        }
    }
    if bytes[0] != MARKER || crc16(&bytes[..13]) != u16::from_be_bytes([bytes[13], bytes[14]]) {
        return None;
    }
    let mut t = [0u8; 8];
    t.copy_from_slice(&bytes[1..9]);
    let mut c = [0u8; 4];
    c.copy_from_slice(&bytes[9..13]);
    Some(BurnedCode {
        capture_us: i64::from_be_bytes(t),
        counter: u32::from_be_bytes(c),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_ccitt_false_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn round_trips_at_every_supported_width() {
        for (w, h) in [
            (160u32, 120u32),
            (320, 240),
            (640, 360),
            (1280, 720),
            (1918, 1080),
        ] {
            let mut y = vec![100u8; (w * h) as usize];
            let code = BurnedCode {
                capture_us: 1_700_000_000_123_456,
                counter: 0xDEAD_BEEF,
            };
            draw_code(&mut y, w, h, code);
            assert_eq!(read_code(&y, w as usize, w, h), Some(code), "{w}x{h}");
        }
    }

    #[test]
    fn a_single_flipped_block_is_rejected_not_misread() {
        let (w, h) = (640u32, 360u32);
        let mut y = vec![0u8; (w * h) as usize];
        draw_code(
            &mut y,
            w,
            h,
            BurnedCode {
                capture_us: 42,
                counter: 7,
            },
        );
        // Invert the block of the counter's lowest bit (bit 103).
        let bs = 16;
        let (bx, by) = ((103 % 40) * bs, (103 / 40) * bs);
        for py in by..by + bs {
            for px in bx..bx + bs {
                let p = &mut y[py * w as usize + px];
                *p = if *p > 128 { BLACK } else { WHITE };
            }
        }
        assert_eq!(read_code(&y, w as usize, w, h), None);
        // Random-looking pictures and short buffers give None, never a panic.
        let noise: Vec<u8> = (0..w * h)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(read_code(&noise, w as usize, w, h), None);
        assert_eq!(read_code(&noise[..100], w as usize, w, h), None);
        assert_eq!(read_code(&noise, 10, w, h), None);
    }
}
