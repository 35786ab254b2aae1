// The live player: fragmented MP4 over a WebSocket into Media Source Extensions.
//
// Protocol (docs of the live route): a text `init` message {codec,width,height,server_time_us},
// then binary messages [kind u8][capture µs i64 BE][pts 90 kHz i64 BE][payload] where kind 0
// is an init segment (ftyp+moov) and kind 1 one moof+mdat holding one access unit (tfdt = pts),
// and a text `ping` every 2 s. The player keeps near the live edge (speeds up a little when
// behind, jumps when far behind), trims old media, measures capture → display latency per
// frame with requestVideoFrameCallback and reconnects by itself with back-off.

import {
  ClockOffset, KIND_INIT, KIND_MEDIA, PtsMap, backoffMs, closeAction, fragmentDecodeTime, initTimescale,
  liveEdgeAction, mimeOf, parseBinary, parseText, percentile,
} from './live-proto.js';
import { overlayText } from './webrtc-proto.js';

const MS = window.MediaSource || window.ManagedMediaSource;
const KEEP_BEHIND_S = 10; // media older than this behind currentTime is removed
const MAX_QUEUE = 300; // appends waiting: far behind (e.g. a throttled tab) → reconnect
const WATCHDOG_MS = 6000; // no message (pings every 2 s) for this long → reconnect
const EDGE_TARGET_S = 0.1; // where a jump lands, before the buffered end
const STALL_MS = 3000; // no new picture for this long while connected → "waiting for the camera…"
const REMOVED_RETRY_MS = 5000; // after "camera removed" (4404): retry this slowly (server restart, camera re-added)

/** Global stats the E2E tests read: window.__vigil.stats[camera]. */
export function statsFor(camera) {
  const v = (window.__vigil = window.__vigil || {});
  v.stats = v.stats || {};
  if (!v.stats[camera]) v.stats[camera] = { firstFrameMs: null, latencies: [], frames: 0 };
  return v.stats[camera];
}

/** One live view of one camera in one <video>. */
export class LivePlayer {
  /**
   * @param {HTMLVideoElement} video
   * @param {string} camera
   * @param {{stream?: string, path?: string, statsEl?: HTMLElement,
   *          onState?: (state: string, text: string) => void, reason?: string}} opts
   *   `path`: the WebSocket path when it is not the camera's own live route (a share link's
   *   `/api/share/ID/live`, same protocol); `stream` is then unused. `reason`: why MSE and
   *   not WebRTC, shown in the overlay.
   */
  constructor(video, camera, opts = {}) {
    this.video = video;
    this.camera = camera;
    this.stream = opts.stream || 'main';
    this.path = opts.path || null;
    this.statsEl = opts.statsEl || null;
    this.reason = opts.reason || '';
    this.onState = opts.onState || (() => {});
    this.stats = statsFor(camera);
    this.clock = new ClockOffset();
    this.ptsMap = new PtsMap();
    this.recent = []; // latencies of the overlay window
    this.frameTimes = []; // performance.now() of displayed frames, for fps
    this.queue = [];
    this.ws = null;
    this.ms = null;
    this.sb = null;
    this.objectUrl = null;
    this.codec = null;
    this.size = '';
    this.attempt = 0;
    this.running = false;
    this.timers = [];
    this.reconnectTimer = null;
    this.lastMessageAt = 0;
    this.firstMediaAt = null;
    this.gotInitThisSocket = false;
    this.rvfcHandle = null;
    this.timescale = null;
    this.lastFrameAt = 0;

    video.muted = true;
    video.defaultMuted = true;
    video.autoplay = true;
    video.playsInline = true;
    video.setAttribute('playsinline', '');
    video.setAttribute('muted', '');
    video.setAttribute('data-camera', camera);
    video.disableRemotePlayback = true; // required by ManagedMediaSource (iOS)

    this.onVisibility = () => {
      if (!this.running) return;
      if (document.hidden) this.disconnect('paused');
      else this.connectNow();
    };
    this.onVideoError = () => {
      if (this.running) this.reconnect('video error');
    };
  }

  /** Starts streaming (idempotent). */
  start() {
    if (this.running) return;
    this.running = true;
    document.addEventListener('visibilitychange', this.onVisibility);
    this.video.addEventListener('error', this.onVideoError);
    this.timers.push(setInterval(() => this.tick(), 500));
    this.timers.push(setInterval(() => this.renderStats(), 1000));
    this.watchFrames();
    if (!MS) {
      this.setState('error', 'this browser has no Media Source Extensions');
      return;
    }
    this.connectNow();
    // For debugging from the console: window.__vigil.players.NAME.
    window.__vigil.players = window.__vigil.players || {};
    window.__vigil.players[this.camera] = this;
  }

  /** Stops streaming and releases the socket and the media source. */
  stop() {
    this.running = false;
    document.removeEventListener('visibilitychange', this.onVisibility);
    this.video.removeEventListener('error', this.onVideoError);
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    clearTimeout(this.reconnectTimer);
    this.closeSocket();
    if (this.rvfcHandle !== null && this.video.cancelVideoFrameCallback) {
      this.video.cancelVideoFrameCallback(this.rvfcHandle);
    }
    this.rvfcHandle = null;
    this.resetMedia(null);
    this.video.removeAttribute('src');
    try {
      this.video.load();
    } catch {
      // nothing to release
    }
  }

  setState(state, text) {
    this.state = state;
    this.onState(state, text);
  }

  // --- socket -------------------------------------------------------------------------

  connectNow() {
    clearTimeout(this.reconnectTimer);
    this.closeSocket();
    if (!this.running || document.hidden) return;
    this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting',
      this.attempt === 0 ? 'connecting…' : 'reconnecting…');
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const path = this.path
      || `/api/cameras/${encodeURIComponent(this.camera)}/live?stream=${encodeURIComponent(this.stream)}`;
    let ws;
    try {
      ws = new WebSocket(`${proto}//${location.host}${path}`);
    } catch {
      this.reconnect('socket error');
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.gotInitThisSocket = false;
    this.lastMessageAt = performance.now();
    ws.onmessage = (ev) => this.onMessage(ev);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      const action = closeAction(ev.code);
      if (action === 'end') {
        // Ended for good by the server (a share link revoked or expired): no reconnect.
        this.stop();
        this.setState('ended', ev.reason || 'ended');
        return;
      }
      if (action === 'slow') {
        // The camera was removed — or the server is stopping and its cameras went first.
        // Keep trying, slowly: a restarted server or a re-added camera picks up again.
        this.reconnect('camera removed', REMOVED_RETRY_MS);
        this.setState('error', 'camera removed — retrying');
        return;
      }
      this.reconnect(ev.reason || 'connection closed');
    };
    ws.onerror = () => {
      // onclose follows and reconnects.
    };
  }

  closeSocket() {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onmessage = null;
      ws.onclose = null;
      ws.onerror = null;
      try {
        ws.close(1000);
      } catch {
        // already closed
      }
    }
  }

  /** Closes the socket without reconnecting (tab hidden). */
  disconnect(state) {
    clearTimeout(this.reconnectTimer);
    this.closeSocket();
    this.setState(state, state);
  }

  /** Schedules a new connection with back-off; shows "reconnecting…". */
  reconnect(reason, minDelayMs = 0) {
    this.closeSocket();
    if (!this.running) return;
    clearTimeout(this.reconnectTimer);
    const delay = Math.max(minDelayMs, backoffMs(this.attempt));
    this.attempt++;
    this.setState('reconnecting', 'reconnecting…');
    this.lastReason = reason;
    this.reconnectTimer = setTimeout(() => this.connectNow(), delay);
  }

  onMessage(ev) {
    this.lastMessageAt = performance.now();
    if (typeof ev.data === 'string') {
      const m = parseText(ev.data);
      if (!m) return;
      if (m.serverTimeUs !== null) this.clock.add(m.serverTimeUs, Date.now());
      if (m.type === 'init') this.onInit(m);
      return;
    }
    const msg = parseBinary(ev.data);
    if (!msg) return;
    if (msg.kind === KIND_INIT) {
      this.timescale = initTimescale(msg.payload);
      this.enqueue({ op: 'append', data: msg.payload, init: true });
    } else if (msg.kind === KIND_MEDIA) {
      // The browser reports a frame's media time from the fragment's tfdt and the track's
      // timescale; the header's 90 kHz pts is the same instant when the server follows the
      // protocol. Both keys are kept so either way the capture time is found.
      this.ptsMap.set(msg.pts, msg.captureUs);
      const dt = this.timescale ? fragmentDecodeTime(msg.payload) : null;
      if (dt !== null) this.ptsMap.setMediaTime(dt / this.timescale, msg.captureUs);
      this.enqueue({ op: 'append', data: msg.payload });
      if (this.queue.length > MAX_QUEUE) this.reconnect('too far behind');
    }
  }

  onInit(m) {
    this.size = m.width && m.height ? `${m.width}×${m.height}` : '';
    // The server sends an init message at the start and whenever the codec, the size or the
    // timeline changed (a camera reconnect: pts going back or jumping): a fresh media source
    // each time, so old timestamps never collide with new ones.
    this.gotInitThisSocket = true;
    this.resetMedia(m.codec);
  }

  // --- media source -------------------------------------------------------------------

  resetMedia(codec) {
    this.queue = [];
    this.sb = null;
    this.firstMediaAt = null;
    this.ptsMap.clear();
    if (this.objectUrl) {
      URL.revokeObjectURL(this.objectUrl);
      this.objectUrl = null;
    }
    this.ms = null;
    this.codec = codec;
    if (!codec) return;
    const mime = mimeOf(codec);
    if (!MS.isTypeSupported(mime)) {
      this.setState('error', `this browser cannot play ${codec}`);
      this.closeSocket();
      this.running = false;
      return;
    }
    const ms = new MS();
    this.ms = ms;
    this.objectUrl = URL.createObjectURL(ms);
    ms.addEventListener('sourceopen', () => {
      if (this.ms !== ms) return;
      try {
        const sb = ms.addSourceBuffer(mime);
        // 'segments': the media time of a frame is its pts / 90 kHz, so the latency
        // measurement can find its capture time.
        sb.mode = 'segments';
        sb.addEventListener('updateend', () => this.onUpdateEnd(sb));
        sb.addEventListener('error', () => this.reconnect('decode error'));
        this.sb = sb;
        this.pump();
      } catch (e) {
        this.reconnect(`media source: ${e.message}`);
      }
    }, { once: true });
    this.video.src = this.objectUrl;
  }

  enqueue(item) {
    this.queue.push(item);
    this.pump();
  }

  pump() {
    const sb = this.sb;
    if (!sb || sb.updating || !this.queue.length || !this.ms || this.ms.readyState !== 'open') return;
    const item = this.queue.shift();
    try {
      if (item.op === 'append') sb.appendBuffer(item.data);
      else sb.remove(item.start, item.end);
    } catch (e) {
      if (e.name === 'QuotaExceededError' && item.op === 'append') {
        this.queue.unshift(item);
        this.trim(2);
      } else {
        this.reconnect(`append: ${e.message}`);
      }
    }
  }

  onUpdateEnd(sb) {
    if (sb !== this.sb) return;
    const b = sb.buffered;
    if (b.length && this.firstMediaAt === null) {
      this.firstMediaAt = performance.now();
      if (this.video.currentTime < b.start(0) || this.video.currentTime > b.end(b.length - 1)) {
        this.video.currentTime = b.start(0);
      }
      const p = this.video.play();
      if (p && p.catch) p.catch(() => {});
    }
    if (b.length) this.keepLive(b);
    this.pump();
  }

  /** Stays near the live edge: skips gaps, speeds up a little, jumps when far behind. */
  keepLive(b) {
    const v = this.video;
    if (v.seeking || !b.length) return;
    const end = b.end(b.length - 1);
    const t = v.currentTime;
    // Inside a hole (the server skipped to the next key frame): go to the next range.
    let inside = false;
    for (let i = 0; i < b.length; i++) {
      if (t >= b.start(i) - 0.05 && t <= b.end(i)) inside = true;
    }
    if (!inside) {
      for (let i = 0; i < b.length; i++) {
        if (b.start(i) > t) {
          v.currentTime = b.start(i);
          return;
        }
      }
    }
    // Just after the start the GOP cache arrives as a burst: catch up at once.
    const early = this.firstMediaAt !== null && performance.now() - this.firstMediaAt < 3000;
    const act = liveEdgeAction(end, t);
    if (act.jump || (early && act.lag > 0.5)) {
      v.currentTime = Math.max(b.start(b.length - 1), end - EDGE_TARGET_S);
      v.playbackRate = 1;
    } else if (v.playbackRate !== act.rate) {
      v.playbackRate = act.rate;
    }
    if (v.paused && v.readyState >= 2) {
      const p = v.play();
      if (p && p.catch) p.catch(() => {});
    }
  }

  /** Removes media more than `keep` s behind the current time. */
  trim(keep = KEEP_BEHIND_S) {
    const sb = this.sb;
    if (!sb || !sb.buffered.length) return;
    const start = sb.buffered.start(0);
    const cut = this.video.currentTime - keep;
    if (cut > start + 1) {
      if (!this.queue.some((q) => q.op === 'remove')) this.queue.unshift({ op: 'remove', start: 0, end: cut });
      this.pump();
    }
  }

  tick() {
    if (!this.running) return;
    if (this.ws && performance.now() - this.lastMessageAt > WATCHDOG_MS) {
      this.reconnect('no data');
      return;
    }
    if (this.sb && this.sb.buffered.length) {
      this.keepLive(this.sb.buffered);
      this.trim();
    }
    // The socket stays open while the camera is offline (pings continue): say so.
    if (this.state === 'live' && performance.now() - this.lastFrameAt > STALL_MS) {
      this.setState('waiting', 'waiting for the camera…');
    }
  }

  // --- measurement --------------------------------------------------------------------

  watchFrames() {
    const v = this.video;
    if (typeof v.requestVideoFrameCallback !== 'function') {
      this.pollFrames();
      return;
    }
    const cb = (now, meta) => {
      if (!this.running) return;
      this.rvfcHandle = v.requestVideoFrameCallback(cb);
      // The frame's display time on the wall clock (the server's clock offset is applied in
      // onFrame). One callback per displayed frame: `frames` then matches `latencies`.
      const displayMs = Date.now() + (meta.expectedDisplayTime - performance.now());
      this.onFrame(meta.mediaTime, displayMs, 1);
    };
    this.rvfcHandle = v.requestVideoFrameCallback(cb);
  }

  /** Without requestVideoFrameCallback (older browsers): sample currentTime per animation frame. */
  pollFrames() {
    let last = -1;
    const loop = () => {
      if (!this.running) return;
      requestAnimationFrame(loop);
      const t = this.video.currentTime;
      if (t !== last && !this.video.paused) {
        last = t;
        this.onFrame(t, Date.now(), 1);
      }
    };
    requestAnimationFrame(loop);
  }

  onFrame(mediaTime, displayMs, n) {
    const s = this.stats;
    if (s.firstFrameMs === null) s.firstFrameMs = performance.now();
    s.frames += n;
    s.transport = 'mse';
    const now = performance.now();
    this.lastFrameAt = now;
    this.frameTimes.push(now);
    while (this.frameTimes.length && now - this.frameTimes[0] > 2000) this.frameTimes.shift();
    if (this.state !== 'live') {
      this.attempt = 0;
      this.setState('live', 'live');
    }
    const captureUs = this.ptsMap.lookup(mediaTime);
    if (captureUs === undefined) return;
    const latency = displayMs + this.clock.ms - captureUs / 1000;
    s.latencies.push(latency);
    if (s.latencies.length > 5000) s.latencies.splice(0, 1000);
    this.recent.push(latency);
    if (this.recent.length > 150) this.recent.shift();
  }

  /** Latency p50/p95 and fps of the last seconds, for the overlay. */
  summary() {
    return {
      p50: percentile(this.recent, 50),
      p95: percentile(this.recent, 95),
      fps: this.frameTimes.length > 1
        ? ((this.frameTimes.length - 1) * 1000) / (this.frameTimes[this.frameTimes.length - 1] - this.frameTimes[0])
        : 0,
    };
  }

  renderStats() {
    if (!this.statsEl) return;
    const { p50, p95, fps } = this.summary();
    this.statsEl.textContent = overlayText({
      transport: 'mse', reason: this.reason, p50, p95, fps, size: this.size,
    });
    this.statsEl.dataset.transport = 'mse';
    this.statsEl.dataset.reason = this.reason;
    this.statsEl.dataset.p50 = Number.isFinite(p50) ? String(Math.round(p50)) : '';
    this.statsEl.dataset.p95 = Number.isFinite(p95) ? String(Math.round(p95)) : '';
    this.statsEl.dataset.fps = fps.toFixed(1);
  }
}
