// Pure parts of the live player (no DOM): the binary message header of the live WebSocket
// protocol, the server clock offset, the pts → capture time map and percentiles. Tested
// with `node --test crates/web/assets-tests/`.

/** Kinds of binary messages (byte 0). */
export const KIND_INIT = 0;
export const KIND_MEDIA = 1;
/** Header bytes before the payload: kind (1) + capture µs (8) + pts 90 kHz (8). */
export const HEADER_LEN = 17;

/**
 * Parses one binary message of the live protocol:
 * byte 0 = kind, bytes 1..9 = capture µs since the epoch (i64 BE), bytes 9..17 = pts in
 * 90 kHz (i64 BE), then the payload. Returns null for a message too short to hold the header.
 * Times are returned as Numbers (µs since the epoch fit in 2^53 for the next 285 years).
 */
export function parseBinary(buf) {
  const ab = buf instanceof ArrayBuffer ? buf : buf.buffer;
  const off = buf instanceof ArrayBuffer ? 0 : buf.byteOffset;
  const len = buf.byteLength;
  if (len < HEADER_LEN) return null;
  const dv = new DataView(ab, off, len);
  const kind = dv.getUint8(0);
  const captureUs = Number(dv.getBigInt64(1, false));
  const pts = Number(dv.getBigInt64(9, false));
  const payload = new Uint8Array(ab, off + HEADER_LEN, len - HEADER_LEN);
  return { kind, captureUs, pts, payload };
}

/** Builds a binary message (for tests and the mock server). */
export function encodeBinary(kind, captureUs, pts, payload) {
  const out = new Uint8Array(HEADER_LEN + payload.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, kind);
  dv.setBigInt64(1, BigInt(Math.round(captureUs)), false);
  dv.setBigInt64(9, BigInt(Math.round(pts)), false);
  out.set(payload, HEADER_LEN);
  return out;
}

/**
 * Parses a text message: `{"type":"init",codec,width,height,server_time_us}` or
 * `{"type":"ping",server_time_us}`. Returns null for anything else (ignored).
 */
export function parseText(text) {
  let m;
  try {
    m = JSON.parse(text);
  } catch {
    return null;
  }
  if (!m || typeof m !== 'object' || typeof m.type !== 'string') return null;
  if (m.type === 'init') {
    if (typeof m.codec !== 'string' || !/^[A-Za-z0-9.]{4,64}$/.test(m.codec)) return null;
    return {
      type: 'init',
      codec: m.codec,
      width: Number(m.width) || 0,
      height: Number(m.height) || 0,
      serverTimeUs: Number.isFinite(m.server_time_us) ? m.server_time_us : null,
    };
  }
  if (m.type === 'ping') {
    return { type: 'ping', serverTimeUs: Number.isFinite(m.server_time_us) ? m.server_time_us : null };
  }
  return null;
}

/**
 * Finds the first box of `type` inside `bytes[start, end)` following `path` (ISO/IEC 14496-12
 * §4.2: 32-bit size, 4-byte type, 64-bit largesize when size = 1). Returns the box's body
 * range or null; never reads out of bounds.
 */
export function findBox(bytes, path, start = 0, end = bytes.byteLength) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let lo = start;
  let hi = end;
  for (const want of path) {
    let found = null;
    let p = lo;
    while (p + 8 <= hi) {
      let size = dv.getUint32(p);
      let head = 8;
      if (size === 1) {
        if (p + 16 > hi) return null;
        size = Number(dv.getBigUint64(p + 8));
        head = 16;
      } else if (size === 0) {
        size = hi - p;
      }
      if (size < head || p + size > hi) return null;
      const type = String.fromCharCode(bytes[p + 4], bytes[p + 5], bytes[p + 6], bytes[p + 7]);
      if (type === want) {
        found = [p + head, p + size];
        break;
      }
      p += size;
    }
    if (!found) return null;
    [lo, hi] = found;
  }
  return [lo, hi];
}

/** Timescale of the first track of an init segment (moov/trak/mdia/mdhd, §8.4.2), or null. */
export function initTimescale(bytes) {
  const r = findBox(bytes, ['moov', 'trak', 'mdia', 'mdhd']);
  if (!r) return null;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const off = r[0] + (bytes[r[0]] === 1 ? 20 : 12);
  return off + 4 <= r[1] ? dv.getUint32(off) || null : null;
}

/** baseMediaDecodeTime of a media fragment (moof/traf/tfdt, §8.8.12), or null. */
export function fragmentDecodeTime(bytes) {
  const r = findBox(bytes, ['moof', 'traf', 'tfdt']);
  if (!r) return null;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes[r[0]] === 1) return r[0] + 12 <= r[1] ? Number(dv.getBigUint64(r[0] + 4)) : null;
  return r[0] + 8 <= r[1] ? dv.getUint32(r[0] + 4) : null;
}

/** The MSE type string of a codec from the init message. */
export function mimeOf(codec) {
  return `video/mp4; codecs="${codec}"`;
}

/**
 * Estimates server clock − client clock (ms). Each sample (server time at send, client time
 * at receipt) underestimates the offset by the transit delay, so the best estimate is the
 * largest of the recent samples (a window, so a changed clock is followed).
 */
export class ClockOffset {
  constructor(window = 15) {
    this.window = window;
    this.samples = [];
  }

  /** Adds a sample: serverUs (µs since the epoch), clientMs (Date.now() at receipt). */
  add(serverUs, clientMs) {
    if (!Number.isFinite(serverUs)) return;
    this.samples.push(serverUs / 1000 - clientMs);
    if (this.samples.length > this.window) this.samples.shift();
  }

  /** Offset in ms (0 before any sample). */
  get ms() {
    return this.samples.length ? Math.max(...this.samples) : 0;
  }
}

/**
 * pts (90 kHz) → capture time (µs), looked up by a frame's media time (seconds). Keys are
 * whole milliseconds of pts; a lookup tolerates ±2 ms of float rounding. Old entries are
 * dropped beyond `max`.
 */
export class PtsMap {
  constructor(max = 1200) {
    this.max = max;
    this.map = new Map();
  }

  set(pts, captureUs) {
    this.setMediaTime(pts / 90000, captureUs);
  }

  /** Same, keyed by the media time (s) the browser will report for the frame. */
  setMediaTime(seconds, captureUs) {
    this.map.set(Math.round(seconds * 1000), captureUs);
    if (this.map.size > this.max) {
      const first = this.map.keys().next().value;
      this.map.delete(first);
    }
  }

  /** Capture µs of the frame shown at mediaTime (s, 90 kHz timeline), or undefined. */
  lookup(mediaTimeS) {
    const k = Math.round(mediaTimeS * 1000);
    for (const d of [0, -1, 1, -2, 2]) {
      const v = this.map.get(k + d);
      if (v !== undefined) return v;
    }
    return undefined;
  }

  clear() {
    this.map.clear();
  }
}

/** The p-th percentile (0..100) of numbers, nearest-rank; NaN for an empty list. */
export function percentile(values, p) {
  if (!values.length) return NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/**
 * What the live-edge controller should do given the buffered end and current time (s):
 * 'jump' (> 1.5 s behind: seek to the edge), a playbackRate to catch up (> 0.3 s behind)
 * or 1.
 */
export function liveEdgeAction(bufferedEnd, currentTime) {
  const lag = bufferedEnd - currentTime;
  if (lag > 1.5) return { jump: true, rate: 1, lag };
  if (lag > 0.3) return { jump: false, rate: lag > 0.8 ? 1.15 : 1.07, lag };
  return { jump: false, rate: 1, lag };
}

/** Close code of a live socket the server ended for good (a share link revoked or expired). */
export const CLOSE_ENDED = 4410;
/** Close code of a live socket whose camera was removed (or the server is stopping). */
export const CLOSE_REMOVED = 4404;

/**
 * What the player does when its socket closes with `code`: 'end' (stop, never reconnect),
 * 'slow' (retry slowly) or 'retry' (back-off).
 */
export function closeAction(code) {
  if (code === CLOSE_ENDED) return 'end';
  if (code === CLOSE_REMOVED) return 'slow';
  return 'retry';
}

/** Back-off before reconnect attempt n (0-based): 0.5 s doubling up to 10 s, ±20 % jitter. */
export function backoffMs(n, rand = Math.random) {
  const base = Math.min(10000, 500 * 2 ** Math.min(n, 10));
  return Math.round(base * (0.8 + 0.4 * rand()));
}
