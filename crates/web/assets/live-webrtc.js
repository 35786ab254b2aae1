// The WebRTC live player (docs/webrtc.md): one WHEP session (RFC 9725) per view. The page
// asks OPTIONS for the ICE servers (TURN credentials), makes a recvonly video and audio
// offer (G.711 when the camera has it; muted until the user unmutes) plus the capture-time
// data channel, waits (briefly) for its candidates, POSTs the offer with the session's CSRF
// token and plays the answer; DELETE ends the session on leave or page hide.
// It reconnects by itself with back-off (ICE failed, disconnected for a few seconds, the
// track ended, no picture), and hands over to MSE (`onFallback`) when the server says it
// will not play the stream over WebRTC (422/501/503) or WebRTC never connects.

import * as api from './api.js';
import { ClockOffset, backoffMs, percentile } from './live-proto.js';
import { statsFor } from './live.js';
import {
  CAPTURE_TIME_CHANNEL, RtpCaptureMap, cleanOffer, inboundVideo, lossPercent, overlayText,
  parseCaptureMessage, parseIceLinks, whepOutcome,
} from './webrtc-proto.js';

const GATHER_MS = 1500; // longest wait for the browser's own candidates before the offer goes out
const DISCONNECTED_MS = 3000; // 'disconnected' for this long → a new session
const CONNECT_MS = 10000; // no connection this long after the answer → a new session
const STALL_MS = 3000; // connected but no picture for this long → a new session (15 fps cameras never pause 3 s)
const MAX_NEVER_CONNECTED = 2; // sessions that never connected in a row → MSE

/** A live view of one camera stream over WebRTC (WHEP). Same surface as LivePlayer. */
export class WebRtcPlayer {
  /**
   * @param {HTMLVideoElement} video
   * @param {string} camera
   * @param {{stream?: string, statsEl?: HTMLElement, onState?: (state: string, text: string) => void,
   *          onFallback?: (reason: string) => void}} opts
   */
  constructor(video, camera, opts = {}) {
    this.video = video;
    this.camera = camera;
    this.stream = opts.stream || 'main';
    this.statsEl = opts.statsEl || null;
    this.onState = opts.onState || (() => {});
    this.onFallback = opts.onFallback || (() => {});
    this.stats = statsFor(camera);
    this.clock = new ClockOffset();
    this.rtpMap = new RtpCaptureMap();
    this.recent = [];
    this.frameTimes = [];
    this.pc = null;
    this.resource = null; // the WHEP session URL (Location)
    this.abort = null;
    this.attempt = 0;
    this.neverConnected = 0;
    this.running = false;
    this.timers = [];
    this.reconnectTimer = null;
    this.disconnectedAt = null;
    this.answeredAt = 0;
    this.connected = false;
    this.lastFrameAt = 0;
    this.rvfcHandle = null;
    this.inbound = null;
    this.prevInbound = null;
    this.loss = NaN;
    this.rtcFps = null;
    this.size = '';
    this.gen = 0; // bumps per session: callbacks of an old one are ignored

    video.muted = true;
    video.autoplay = true;
    video.playsInline = true;
    video.setAttribute('playsinline', '');
    video.setAttribute('muted', '');
    video.setAttribute('data-camera', camera);

    this.onVisibility = () => {
      if (!this.running) return;
      if (document.hidden) this.disconnect('paused');
      else this.connectNow();
    };
    // A page being left or put in the back/forward cache ends the session at once (keepalive
    // DELETE), rather than holding a server slot until ICE times out.
    this.onPageHide = () => this.closeSession();
  }

  /** Starts streaming (idempotent). */
  start() {
    if (this.running) return;
    this.running = true;
    document.addEventListener('visibilitychange', this.onVisibility);
    window.addEventListener('pagehide', this.onPageHide);
    this.timers.push(setInterval(() => this.tick(), 500));
    this.timers.push(setInterval(() => this.sampleStats(), 1000));
    this.watchFrames();
    window.__vigil.players = window.__vigil.players || {};
    window.__vigil.players[this.camera] = this;
    this.connectNow();
  }

  /** Stops streaming, ends the WHEP session and releases the video. */
  stop() {
    this.running = false;
    document.removeEventListener('visibilitychange', this.onVisibility);
    window.removeEventListener('pagehide', this.onPageHide);
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    clearTimeout(this.reconnectTimer);
    if (this.rvfcHandle !== null && this.video.cancelVideoFrameCallback) {
      this.video.cancelVideoFrameCallback(this.rvfcHandle);
    }
    this.rvfcHandle = null;
    this.closeSession();
    this.video.srcObject = null;
  }

  setState(state, text) {
    this.state = state;
    this.onState(state, text);
  }

  // --- session ------------------------------------------------------------------------

  whepPath() {
    return `/api/cameras/${encodeURIComponent(this.camera)}/whep?stream=${encodeURIComponent(this.stream)}`;
  }

  async headers(extra) {
    let s = api.currentSession();
    if (!s || !s.csrf_token) s = await api.loadSession();
    const h = { ...extra };
    if (s && s.csrf_token) h['X-CSRF-Token'] = s.csrf_token;
    return h;
  }

  /** The ICE servers from OPTIONS' `Link: <url>; rel="ice-server"; username=…; credential=…`. */
  async iceServers(signal) {
    try {
      const res = await fetch(this.whepPath(), {
        method: 'OPTIONS', credentials: 'same-origin', cache: 'no-store', signal, referrerPolicy: 'same-origin',
      });
      return parseIceLinks(res.ok ? res.headers.get('Link') : null);
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      return [];
    }
  }

  async connectNow() {
    clearTimeout(this.reconnectTimer);
    this.closeSession();
    if (!this.running || document.hidden) return;
    const gen = ++this.gen;
    this.answeredAt = 0;
    const abort = new AbortController();
    this.abort = abort;
    this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting',
      this.attempt === 0 ? 'connecting…' : 'reconnecting…');
    try {
      const iceServers = await this.iceServers(abort.signal);
      if (gen !== this.gen) return;
      const pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle' });
      this.pc = pc;
      this.connected = false;
      this.disconnectedAt = null;
      pc.addTransceiver('video', { direction: 'recvonly' });
      // G.711 from the camera, passed through when it has it (the server rejects this
      // section otherwise). The element stays muted, as over MSE: sound only once the
      // user unmutes it.
      pc.addTransceiver('audio', { direction: 'recvonly' });
      // Video and audio arrive as separate tracks; one stream holds both so that the
      // element plays them together.
      const stream = new MediaStream();
      const ch = pc.createDataChannel(CAPTURE_TIME_CHANNEL, { ordered: false, maxRetransmits: 0 });
      ch.onmessage = (ev) => {
        if (gen !== this.gen || typeof ev.data !== 'string') return;
        const m = parseCaptureMessage(ev.data);
        if (!m) return;
        this.rtpMap.set(m.rtp, m.captureUs);
        if (m.serverTimeUs !== null) this.clock.add(m.serverTimeUs, Date.now());
      };
      pc.ontrack = (ev) => {
        if (gen !== this.gen) return;
        stream.addTrack(ev.track);
        if (this.video.srcObject !== stream) this.video.srcObject = stream;
        // Only the picture's end ends the session: a camera without G.711 has no audio.
        if (ev.track.kind !== 'video') return;
        ev.track.addEventListener('ended', () => {
          if (gen === this.gen) this.reconnect('track ended');
        });
        const p = this.video.play();
        if (p && p.catch) p.catch(() => {});
      };
      pc.onconnectionstatechange = () => {
        if (gen !== this.gen) return;
        const st = pc.connectionState;
        if (st === 'connected') {
          this.connected = true;
          this.neverConnected = 0;
          this.disconnectedAt = null;
        } else if (st === 'failed' || st === 'closed') {
          this.reconnect(`connection ${st}`);
        } else if (st === 'disconnected') {
          this.disconnectedAt = performance.now();
        }
      };
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, GATHER_MS);
      if (gen !== this.gen) return;
      const res = await fetch(this.whepPath(), {
        method: 'POST',
        headers: await this.headers({ 'Content-Type': 'application/sdp', Accept: 'application/sdp' }),
        body: cleanOffer(pc.localDescription.sdp),
        credentials: 'same-origin',
        cache: 'no-store',
        signal: abort.signal,
        referrerPolicy: 'same-origin',
      });
      const text = await res.text();
      if (gen !== this.gen) return;
      if (res.status === 201) {
        const loc = res.headers.get('Location');
        this.resource = loc ? new URL(loc, location.href).pathname : null;
      }
      let body = null;
      if (res.status !== 201) {
        try {
          body = JSON.parse(text);
        } catch {
          body = null;
        }
      }
      const out = whepOutcome(res.status, body);
      if (out.action === 'fallback') {
        this.fallback(out.reason);
        return;
      }
      if (out.action === 'login') {
        // The API client sends the user to the login page on its next call; stop here.
        this.stop();
        this.setState('error', 'signed out');
        return;
      }
      if (out.action === 'retry') {
        this.reconnect(out.reason);
        return;
      }
      await pc.setRemoteDescription({ type: 'answer', sdp: text });
      this.answeredAt = performance.now();
    } catch (e) {
      if (gen !== this.gen || (e && e.name === 'AbortError')) return;
      this.reconnect(`WebRTC: ${e && e.message ? e.message : e}`);
    }
  }

  /** Hands the view over to MSE with `reason` (shown in the overlay). */
  fallback(reason) {
    this.stop();
    this.onFallback(reason);
  }

  /** Closes the peer connection and DELETEs the WHEP session (fire and forget). */
  closeSession() {
    this.gen++;
    if (this.abort) this.abort.abort();
    this.abort = null;
    const pc = this.pc;
    this.pc = null;
    if (pc) {
      pc.ontrack = null;
      pc.onconnectionstatechange = null;
      try {
        pc.close();
      } catch {
        // already closed
      }
    }
    const resource = this.resource;
    this.resource = null;
    if (resource) {
      const csrf = api.currentSession() && api.currentSession().csrf_token;
      fetch(resource, {
        method: 'DELETE',
        headers: csrf ? { 'X-CSRF-Token': csrf } : {},
        credentials: 'same-origin',
        keepalive: true,
        referrerPolicy: 'same-origin',
      }).catch(() => {});
    }
    this.rtpMap.clear();
    this.prevInbound = null;
    this.inbound = null;
  }

  disconnect(state) {
    clearTimeout(this.reconnectTimer);
    this.closeSession();
    this.setState(state, state);
  }

  /** A new WHEP session after back-off; MSE after sessions that never connected. */
  reconnect(reason) {
    if (!this.running) return;
    // Only a session that got its answer and still never connected counts (ICE cannot get
    // through); a server that is away (restart) keeps being retried over WebRTC.
    if (!this.connected && this.answeredAt) this.neverConnected++;
    this.closeSession();
    if (this.neverConnected >= MAX_NEVER_CONNECTED) {
      this.fallback('WebRTC could not connect');
      return;
    }
    clearTimeout(this.reconnectTimer);
    const delay = backoffMs(this.attempt);
    this.attempt++;
    this.lastReason = reason;
    this.setState('reconnecting', 'reconnecting…');
    this.reconnectTimer = setTimeout(() => this.connectNow(), delay);
  }

  tick() {
    if (!this.running || !this.pc) return;
    const now = performance.now();
    if (this.disconnectedAt !== null && now - this.disconnectedAt > DISCONNECTED_MS) {
      this.reconnect('disconnected');
      return;
    }
    if (!this.connected && this.answeredAt && now - this.answeredAt > CONNECT_MS) {
      this.reconnect('no connection');
      return;
    }
    // Connected but no picture (the server's session ended, the camera stopped): a new
    // session finds out which; the server answers 503 while the camera has no picture.
    if (this.connected && now - Math.max(this.lastFrameAt, this.answeredAt) > STALL_MS) {
      this.reconnect('no picture');
      return;
    }
    if (this.state === 'live' && now - this.lastFrameAt > 3000) {
      this.setState('waiting', 'waiting for the camera…');
    }
  }

  // --- measurement --------------------------------------------------------------------

  watchFrames() {
    const v = this.video;
    if (typeof v.requestVideoFrameCallback !== 'function') return;
    const cb = (now, meta) => {
      if (!this.running) return;
      this.rvfcHandle = v.requestVideoFrameCallback(cb);
      const displayMs = Date.now() + (meta.expectedDisplayTime - performance.now());
      this.onFrame(meta.rtpTimestamp, displayMs, meta.width, meta.height);
    };
    this.rvfcHandle = v.requestVideoFrameCallback(cb);
  }

  onFrame(rtpTimestamp, displayMs, width, height) {
    const s = this.stats;
    const now = performance.now();
    if (s.firstFrameMs === null) s.firstFrameMs = now;
    s.frames += 1;
    s.transport = 'webrtc';
    this.lastFrameAt = now;
    this.frameTimes.push(now);
    while (this.frameTimes.length && now - this.frameTimes[0] > 2000) this.frameTimes.shift();
    if (width && height) this.size = `${width}×${height}`;
    if (this.state !== 'live') {
      this.attempt = 0;
      this.setState('live', 'live');
    }
    const captureUs = this.rtpMap.lookup(rtpTimestamp);
    if (captureUs === undefined) return;
    const latency = displayMs + this.clock.ms - captureUs / 1000;
    s.latencies.push(latency);
    if (s.latencies.length > 5000) s.latencies.splice(0, 1000);
    this.recent.push(latency);
    if (this.recent.length > 150) this.recent.shift();
  }

  async sampleStats() {
    const pc = this.pc;
    if (pc && this.connected) {
      try {
        const cur = inboundVideo(await pc.getStats());
        if (cur && pc === this.pc) {
          this.loss = lossPercent(this.prevInbound, cur);
          this.rtcFps = cur.framesPerSecond;
          this.prevInbound = cur;
          this.stats.packetsLost = cur.packetsLost;
          this.stats.packetsReceived = cur.packetsReceived;
        }
      } catch {
        // the connection closed meanwhile
      }
    }
    this.renderStats();
  }

  /** Latency p50/p95 and fps of the last seconds, for the overlay. */
  summary() {
    const ft = this.frameTimes;
    const shown = ft.length > 1 ? ((ft.length - 1) * 1000) / (ft[ft.length - 1] - ft[0]) : 0;
    return {
      p50: percentile(this.recent, 50),
      p95: percentile(this.recent, 95),
      fps: Number.isFinite(this.rtcFps) && this.rtcFps !== null ? this.rtcFps : shown,
    };
  }

  renderStats() {
    if (!this.statsEl) return;
    const { p50, p95, fps } = this.summary();
    this.statsEl.textContent = overlayText({
      transport: 'webrtc', p50, p95, fps, loss: this.loss, size: this.size,
    });
    this.statsEl.dataset.transport = 'webrtc';
    this.statsEl.dataset.reason = '';
    this.statsEl.dataset.p50 = Number.isFinite(p50) ? String(Math.round(p50)) : '';
    this.statsEl.dataset.p95 = Number.isFinite(p95) ? String(Math.round(p95)) : '';
    this.statsEl.dataset.fps = fps.toFixed(1);
    this.statsEl.dataset.loss = Number.isFinite(this.loss) ? this.loss.toFixed(2) : '';
  }
}

/** Resolves when ICE gathering completes or after `ms`, whichever is first. */
function gathered(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === 'complete') done();
    }
    pc.addEventListener('icegatheringstatechange', check);
  });
}
