// A live video box (grid tile or camera page): <video data-camera>, the `.stats` overlay,
// a status badge and a "connecting… / reconnecting…" message, driven by a WebRtcPlayer
// where the browser can decode the stream over WebRTC, a LivePlayer (MSE) otherwise and
// whenever the server declines WebRTC for the stream (docs/webrtc.md).

import { h } from './dom.js';
import { LivePlayer } from './live.js';
import { WebRtcPlayer } from './live-webrtc.js';
import { chooseTransport } from './webrtc-proto.js';

/**
 * The transport this browser gets by default (see chooseTransport). `localStorage
 * vigil.transport = 'mse'` forces MSE (a user's way out, and the tests' way to compare).
 */
export function defaultTransport(shareLink) {
  let videoCodecs = null;
  const hasPeerConnection = typeof window.RTCPeerConnection === 'function';
  try {
    const caps = window.RTCRtpReceiver && RTCRtpReceiver.getCapabilities
      ? RTCRtpReceiver.getCapabilities('video') : null;
    videoCodecs = caps ? caps.codecs : null;
  } catch {
    videoCodecs = null;
  }
  let forceMse = false;
  try {
    forceMse = localStorage.getItem('vigil.transport') === 'mse';
  } catch {
    // storage blocked: the default
  }
  return chooseTransport({ hasPeerConnection, videoCodecs, shareLink, forceMse });
}

/** Stream used for a camera in small views: the sub stream when the camera has one. */
export function smallStream(cam) {
  if (cam.sub_url) return 'sub';
  const streams = (cam.status && cam.status.streams) || [];
  return streams.some((s) => s.stream === 'sub') ? 'sub' : 'main';
}

/** State of the camera's main stream from its CameraStatus: 'streaming', 'offline', … */
export function cameraState(cam) {
  const streams = (cam.status && cam.status.streams) || [];
  const main = streams.find((s) => s.stream === 'main') || streams[0];
  return main ? main.state : 'unknown';
}

export function snapshotUrl(name) {
  return `/api/cameras/${encodeURIComponent(name)}/snapshot.jpg?t=${Date.now()}`;
}

/**
 * Builds a live box. Returns {box, video, stats, badge, player, start(), stop(), setStream(s)}.
 * opts: {stream, className, poster (bool), onState, path (a WebSocket path other than the
 * camera's live route, see LivePlayer)}.
 */
export function liveView(name, opts = {}) {
  const video = h('video', { muted: true, playsinline: true, autoplay: true, 'aria-label': `Live video of ${name}` });
  if (opts.poster !== false) video.poster = snapshotUrl(name);
  const stats = h('div', { class: 'stats', 'aria-live': 'off' }, 'p50 — · p95 — · 0.0 fps');
  const msg = h('div', { class: 'player-msg' }, 'connecting…');
  const badge = h('span', { class: 'badge connecting' }, 'connecting');
  const view = { video, stats, badge, msg, player: null, stream: opts.stream || 'main' };
  const onState = (state, text) => {
    badge.className = `badge ${state}`;
    badge.textContent = state === 'live' ? 'live' : state;
    msg.textContent = state === 'live' ? '' : text;
    if (opts.onState) opts.onState(state, text);
  };
  const startMse = (reason) => {
    view.player = new LivePlayer(video, name, {
      stream: view.stream, path: opts.path, statsEl: stats, onState, reason,
    });
    view.transport = 'mse';
    view.player.start();
  };
  view.start = () => {
    if (view.player) return;
    const choice = defaultTransport(!!opts.path);
    // Once the server declined WebRTC for this view (422/501/503) it stays on MSE until the
    // view is rebuilt (a page change, another stream).
    if (choice.transport === 'mse' || view.fallbackReason) {
      startMse(view.fallbackReason || choice.reason);
      return;
    }
    const player = new WebRtcPlayer(video, name, {
      stream: view.stream,
      statsEl: stats,
      onState,
      onFallback: (reason) => {
        if (view.player !== player) return;
        view.fallbackReason = reason;
        startMse(reason);
      },
    });
    view.player = player;
    view.transport = 'webrtc';
    player.start();
  };
  view.stop = () => {
    if (!view.player) return;
    view.player.stop();
    view.player = null;
    onState('paused', '');
  };
  view.setStream = (s) => {
    view.stream = s;
    view.fallbackReason = '';
    if (view.player) {
      view.stop();
      view.start();
    }
  };
  return view;
}
