// Pure parts of the WebRTC live player (no DOM, no RTCPeerConnection): which transport a
// browser gets, what a WHEP answer's status means, the RTP timestamp → capture time map fed
// by the server's capture-time data channel, the offer clean-up and the inbound-rtp figures
// of the overlay. Tested with `node --test crates/web/assets-tests/`.

/** Label of the data channel on which the server sends each frame's capture time. */
export const CAPTURE_TIME_CHANNEL = 'vigil-capture-time';

/**
 * Which transport a live view uses: 'webrtc' when the browser has RTCPeerConnection and can
 * decode H.264 from it (the only codec the server passes through), 'mse' otherwise.
 * `env`: {hasPeerConnection, videoCodecs: [{mimeType}] from
 * RTCRtpReceiver.getCapabilities('video') (null when unknown), shareLink (a share link's
 * WebSocket path: no WHEP route exists for it), forceMse (the user's or a test's choice)}.
 * Returns {transport, reason} (reason: why MSE, '' for WebRTC).
 */
export function chooseTransport(env) {
  if (env.forceMse) return { transport: 'mse', reason: 'chosen' };
  if (env.shareLink) return { transport: 'mse', reason: '' };
  if (!env.hasPeerConnection) return { transport: 'mse', reason: 'no WebRTC in this browser' };
  const codecs = env.videoCodecs || [];
  if (!codecs.some((c) => c && typeof c.mimeType === 'string' && c.mimeType.toLowerCase() === 'video/h264')) {
    return { transport: 'mse', reason: 'no H.264 over WebRTC in this browser' };
  }
  return { transport: 'webrtc', reason: '' };
}

/**
 * What the player does with a WHEP POST answered `status` (body parsed as JSON or null):
 * {action: 'play'} (201), {action: 'fallback', reason} (the server cannot or will not play
 * this stream over WebRTC: 422 with its reason code, 501 WebRTC off, 503 busy or no
 * picture yet — MSE still plays), {action: 'login'} (401) or {action: 'retry', reason}.
 */
export function whepOutcome(status, body) {
  if (status === 201) return { action: 'play' };
  if (status === 401) return { action: 'login' };
  const msg = body && typeof body.error === 'string' ? body.error : '';
  if (status === 422) {
    const code = body && typeof body.reason === 'string' ? body.reason : 'declined';
    return { action: 'fallback', reason: `WebRTC declined (${code})${msg ? `: ${msg}` : ''}` };
  }
  if (status === 501) return { action: 'fallback', reason: 'WebRTC is off on the server' };
  if (status === 503) return { action: 'fallback', reason: `WebRTC unavailable${msg ? `: ${msg}` : ''}` };
  if (status === 403 || status === 404) return { action: 'fallback', reason: `WebRTC refused (${status})` };
  return { action: 'retry', reason: `WHEP ${status || 'network error'}` };
}

/**
 * Removes candidates the server cannot use from an offer: mDNS host names (`….local`, which
 * Chromium puts in place of private addresses; the server does not resolve them and finds
 * the browser's address from its connectivity checks instead, RFC 8445 §7.3.1.3).
 */
export function cleanOffer(sdp) {
  return sdp
    .split(/\r\n/)
    .filter((l) => !(l.startsWith('a=candidate:') && /\s\S+\.local\s/i.test(l)))
    .join('\r\n');
}

/**
 * Parses one capture-time message: `{"rtp":u32,"capture_us":i64,"server_time_us":i64}`.
 * Returns {rtp, captureUs, serverTimeUs} or null.
 */
export function parseCaptureMessage(text) {
  let m;
  try {
    m = JSON.parse(text);
  } catch {
    return null;
  }
  if (!m || !Number.isInteger(m.rtp) || m.rtp < 0 || m.rtp > 0xffffffff) return null;
  if (!Number.isFinite(m.capture_us)) return null;
  return {
    rtp: m.rtp,
    captureUs: m.capture_us,
    serverTimeUs: Number.isFinite(m.server_time_us) ? m.server_time_us : null,
  };
}

/**
 * RTP timestamp (32-bit, 90 kHz) → capture time (µs since the epoch) of the frames the
 * server sent; looked up with requestVideoFrameCallback's `rtpTimestamp`. Old entries are
 * dropped beyond `max` (the oldest first), so a wrapped timestamp never finds a stale frame.
 */
export class RtpCaptureMap {
  constructor(max = 600) {
    this.max = max;
    this.map = new Map();
  }

  set(rtp, captureUs) {
    const k = rtp >>> 0;
    this.map.delete(k);
    this.map.set(k, captureUs);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value);
  }

  /** Capture µs of the frame with this RTP timestamp, or undefined. */
  lookup(rtp) {
    if (!Number.isFinite(rtp)) return undefined;
    return this.map.get(rtp >>> 0);
  }

  clear() {
    this.map.clear();
  }

  get size() {
    return this.map.size;
  }
}

/**
 * The video inbound-rtp entry of a getStats() report (a Map or an iterable of entries), as
 * {packetsLost, packetsReceived, framesPerSecond, framesDecoded} or null.
 */
export function inboundVideo(report) {
  const values = typeof report.values === 'function' ? report.values() : report;
  for (const s of values) {
    if (s && s.type === 'inbound-rtp' && (s.kind === 'video' || s.mediaType === 'video')) {
      return {
        packetsLost: Number(s.packetsLost) || 0,
        packetsReceived: Number(s.packetsReceived) || 0,
        framesPerSecond: Number.isFinite(s.framesPerSecond) ? s.framesPerSecond : null,
        framesDecoded: Number(s.framesDecoded) || 0,
      };
    }
  }
  return null;
}

/**
 * Packet loss (%) between two inbound-rtp samples (the window of the overlay), or over the
 * whole session when `prev` is null; NaN before any packet. packetsLost may go down (late
 * packets counted again), so the window's loss is never below 0.
 */
export function lossPercent(prev, cur) {
  if (!cur) return NaN;
  const lost = Math.max(0, cur.packetsLost - (prev ? prev.packetsLost : 0));
  const received = Math.max(0, cur.packetsReceived - (prev ? prev.packetsReceived : 0));
  if (lost + received === 0) return prev ? lossPercent(null, cur) : NaN;
  return (100 * lost) / (lost + received);
}

/** The overlay's text: transport first, then the figures that are known. */
export function overlayText(o) {
  const ms = (x) => (Number.isFinite(x) ? `${Math.round(x)} ms` : '—');
  const head = o.transport === 'webrtc' ? 'WebRTC' : `MSE${o.reason ? ` (${o.reason})` : ''}`;
  const parts = [head, `p50 ${ms(o.p50)}`, `p95 ${ms(o.p95)}`, `${(o.fps || 0).toFixed(1)} fps`];
  if (o.transport === 'webrtc') parts.push(`loss ${Number.isFinite(o.loss) ? o.loss.toFixed(1) : '—'} %`);
  if (o.size) parts.push(o.size);
  return parts.join(' · ');
}

/**
 * ICE servers from a WHEP `Link` header (RFC 9725 §4.6: `<url>; rel="ice-server";
 * username="…"; credential="…"`, comma-separated).
 */
export function parseIceLinks(header) {
  if (!header) return [];
  const out = [];
  for (const m of header.matchAll(/<([^>]+)>([^,<]*)/g)) {
    const params = {};
    for (const p of m[2].matchAll(/;\s*([a-zA-Z-]+)\s*=\s*(?:"([^"]*)"|([^;,\s]*))/g)) {
      params[p[1].toLowerCase()] = p[2] !== undefined ? p[2] : p[3];
    }
    if (params.rel !== 'ice-server' || !/^(stun|turns?):/.test(m[1])) continue;
    const server = { urls: m[1] };
    if (params.username !== undefined) server.username = params.username;
    if (params.credential !== undefined) server.credential = params.credential;
    out.push(server);
  }
  return out;
}
