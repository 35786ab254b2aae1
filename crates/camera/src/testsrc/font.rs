//! A tiny 5x7 bitmap font for the burned-in clock: digits and the few signs a time needs.

/// Glyph width and height in font pixels.
pub(crate) const GLYPH_W: usize = 5;
pub(crate) const GLYPH_H: usize = 7;
/// Horizontal advance per character, in font pixels (one column of spacing).
pub(crate) const ADVANCE: usize = GLYPH_W + 1;

/// Rows of a glyph, top first; bit 4 is the leftmost pixel.
pub(crate) fn glyph(c: char) -> [u8; GLYPH_H] {
    match c {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        _ => [0; GLYPH_H],
    }
}

/// Every character the font draws, for reading text back in tests.
#[cfg(test)]
pub(crate) const CHARSET: &str = "0123456789:.#- ";

/// Draws `text` into a luma plane at (`x`, `y`), each font pixel `scale` x `scale`
/// samples: glyphs in `fg` on a box of `bg` one font pixel larger on every side, so the
/// text stays legible over any background. Clipped to the plane.
#[allow(clippy::too_many_arguments)]
pub(crate) fn draw_text(
    plane: &mut [u8],
    stride: usize,
    height: usize,
    x: usize,
    y: usize,
    scale: usize,
    text: &str,
    (fg, bg): (u8, u8),
) {
    let chars = text.chars().count();
    let box_w = (chars * ADVANCE + 1) * scale;
    let box_h = (GLYPH_H + 2) * scale;
    let x0 = x.saturating_sub(scale);
    let y0 = y.saturating_sub(scale);
    for row in y0..(y0 + box_h).min(height) {
        let start = row * stride + x0;
        let end = (row * stride + (x0 + box_w).min(stride)).min(plane.len());
        if let Some(span) = plane.get_mut(start..end) {
            span.fill(bg);
        }
    }
    for (i, c) in text.chars().enumerate() {
        let rows = glyph(c);
        let cx = x + i * ADVANCE * scale;
        for (gy, bits) in rows.iter().enumerate() {
            for gx in 0..GLYPH_W {
                if bits & (0x10 >> gx) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    let py = y + gy * scale + dy;
                    if py >= height {
                        continue;
                    }
                    let px = cx + gx * scale;
                    let start = py * stride + px;
                    let end = py * stride + (px + scale).min(stride);
                    if px < stride {
                        if let Some(span) = plane.get_mut(start..end) {
                            span.fill(fg);
                        }
                    }
                }
            }
        }
    }
}

/// Reads `len` characters drawn by [`draw_text`] back (a minimal OCR for tests).
#[cfg(test)]
pub(crate) fn read_text(
    plane: &[u8],
    stride: usize,
    x: usize,
    y: usize,
    scale: usize,
    len: usize,
) -> String {
    (0..len)
        .map(|i| {
            let cx = x + i * ADVANCE * scale;
            let mut rows = [0u8; GLYPH_H];
            for (gy, r) in rows.iter_mut().enumerate() {
                for gx in 0..GLYPH_W {
                    let px = cx + gx * scale + scale / 2;
                    let py = y + gy * scale + scale / 2;
                    if plane.get(py * stride + px).copied().unwrap_or(0) > 128 {
                        *r |= 0x10 >> gx;
                    }
                }
            }
            CHARSET.chars().find(|&c| glyph(c) == rows).unwrap_or('?')
        })
        .collect()
}
