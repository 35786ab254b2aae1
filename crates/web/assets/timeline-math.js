// Pure mapping and zoom logic of the timeline (no DOM), tested with node --test.

export const MIN_SPAN_US = 60e6; // 1 minute
export const MAX_SPAN_US = 14 * 86400e6; // 14 days

/** x (px from the left edge, 0..width) → time µs, linear over the visible window. */
export function xToTime(x, width, startUs, endUs) {
  if (width <= 0) return startUs;
  return startUs + (x / width) * (endUs - startUs);
}

/** time µs → x px. */
export function timeToX(t, width, startUs, endUs) {
  if (endUs === startUs) return 0;
  return ((t - startUs) / (endUs - startUs)) * width;
}

/**
 * Zooms the window [startUs, endUs) by `factor` (<1 in, >1 out) keeping `anchorUs` at the
 * same screen position; the span is clamped to [MIN_SPAN_US, MAX_SPAN_US].
 */
export function zoomWindow(startUs, endUs, factor, anchorUs) {
  const span = endUs - startUs;
  const newSpan = Math.min(MAX_SPAN_US, Math.max(MIN_SPAN_US, span * factor));
  const a = anchorUs === undefined ? startUs + span / 2 : anchorUs;
  const frac = span > 0 ? (a - startUs) / span : 0.5;
  const s = a - frac * newSpan;
  return [Math.round(s), Math.round(s + newSpan)];
}

/** Moves the window by `frac` of its span (negative: back in time). */
export function panWindow(startUs, endUs, frac) {
  const d = Math.round((endUs - startUs) * frac);
  return [startUs + d, endUs + d];
}

const STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
  43200, 86400, 172800, 604800];

/** Tick step (µs) so that labels are at least `minPx` apart. */
export function tickStep(spanUs, widthPx, minPx = 90) {
  const perPx = spanUs / Math.max(1, widthPx);
  for (const s of STEPS_S) {
    if ((s * 1e6) / perPx >= minPx) return s * 1e6;
  }
  return STEPS_S[STEPS_S.length - 1] * 1e6;
}

/**
 * Tick times (µs) within [startUs, endUs] for a step, aligned on local time (so hours and
 * days fall on local midnight): `tzOffsetMin` is Date#getTimezoneOffset() (minutes).
 */
export function ticks(startUs, endUs, stepUs, tzOffsetMin = 0) {
  const shift = -tzOffsetMin * 60e6; // local = utc + shift
  const first = Math.ceil((startUs + shift) / stepUs) * stepUs - shift;
  const out = [];
  for (let t = first; t <= endUs && out.length < 500; t += stepUs) out.push(t);
  return out;
}

/** The range containing t, or the first one after it (to play from a click in a gap). */
export function playableFrom(ranges, t) {
  let next = null;
  for (const r of ranges) {
    if (t >= r.start_us && t < r.end_us) return t;
    if (r.start_us > t && (next === null || r.start_us < next)) next = r.start_us;
  }
  return next;
}
