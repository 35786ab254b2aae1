// A live video box (grid tile or camera page): <video data-camera>, the `.stats` overlay,
// a status badge and a "connecting… / reconnecting…" message, driven by a LivePlayer.

import { h } from './dom.js';
import { LivePlayer } from './live.js';

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
  view.start = () => {
    if (view.player) return;
    view.player = new LivePlayer(video, name, {
      stream: view.stream, path: opts.path, statsEl: stats, onState,
    });
    view.player.start();
  };
  view.stop = () => {
    if (!view.player) return;
    view.player.stop();
    view.player = null;
    onState('paused', '');
  };
  view.setStream = (s) => {
    view.stream = s;
    if (view.player) {
      view.stop();
      view.start();
    }
  };
  return view;
}
