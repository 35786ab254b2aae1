// Formatting of times, durations, sizes and rates for display (pure functions).

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** µs since the epoch → "2026-11-25 23:41:39" in local time. */
export function fmtTime(us, withSeconds = true) {
  if (us === null || us === undefined) return '—';
  const d = new Date(us / 1000);
  const s = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return withSeconds ? `${s}:${pad(d.getSeconds())}` : s;
}

/** µs since the epoch → value of an <input type=datetime-local step=1> (local time). */
export function toLocalInput(us) {
  const d = new Date(us / 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Value of a datetime-local input → µs since the epoch (NaN when empty/invalid). */
export function fromLocalInput(value) {
  if (!value) return NaN;
  // "YYYY-MM-DDTHH:MM[:SS]" without an offset is local time (ECMA-262 Date.parse).
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?$/.exec(value);
  if (!m) return NaN;
  const d = new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  return d.getTime() * 1000;
}

/** Local day "YYYY-MM-DD" → [start_us, end_us) of that local day. */
export function dayRange(day) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day || '');
  if (!m) return null;
  const start = new Date(+m[1], +m[2] - 1, +m[3]);
  const end = new Date(+m[1], +m[2] - 1, +m[3] + 1);
  return [start.getTime() * 1000, end.getTime() * 1000];
}

/** Seconds → "1 h 02 min", "45 s", "3 d 4 h". */
export function fmtDuration(s) {
  if (!Number.isFinite(s)) return '—';
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** Bytes → "1.5 GB". */
export function fmtBytes(n) {
  if (!Number.isFinite(n)) return '—';
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)} ${units[i]}`;
}

/** Bits per second → "1.2 Mbit/s". */
export function fmtBitrate(bps) {
  if (!Number.isFinite(bps)) return '—';
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(2)} Mbit/s`;
  if (bps >= 1e3) return `${(bps / 1e3).toFixed(0)} kbit/s`;
  return `${bps} bit/s`;
}

/** Age of a timestamp (µs) relative to now (ms), "3 s ago". */
export function fmtAgo(us, nowMs = Date.now()) {
  if (us === null || us === undefined) return 'never';
  const s = (nowMs - us / 1000) / 1000;
  if (s < 1) return 'just now';
  return `${fmtDuration(s)} ago`;
}
