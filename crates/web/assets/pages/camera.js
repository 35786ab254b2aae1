// #/camera/NAME : one camera live (main stream by default), stats overlay toggle, stream
// choice, full screen, links to the timeline and a snapshot, button#share-open (a share link
// to this live view, share-dialog.js); status details below.

import * as api from '../api.js';
import { h, replace, toast } from '../dom.js';
import { fmtAgo, fmtBitrate } from '../format.js';
import { liveView, snapshotUrl } from '../liveview.js';
import { openShareDialog } from '../share-dialog.js';

export async function render(view, params, ctx) {
  const name = params.name;
  const enc = encodeURIComponent(name);
  const cam = await api.get(`/api/cameras/${enc}`, { signal: ctx.signal });
  if (!ctx.alive()) return;
  document.title = `${name} · Vigil`;

  const lv = liveView(name, { stream: 'main' });
  const box = h('div', { class: 'player big', dataset: { camera: name } }, lv.video, lv.msg, lv.stats);
  ctx.onCleanup(() => lv.stop());

  const hasSub = !!cam.sub_url || ((cam.status && cam.status.streams) || []).some((s) => s.stream === 'sub');
  const streamSel = h('select', { 'aria-label': 'Stream' },
    h('option', { value: 'main' }, 'Main stream'),
    hasSub ? h('option', { value: 'sub' }, 'Sub stream') : null);
  streamSel.addEventListener('change', () => lv.setStream(streamSel.value));

  const statsOn = localStorage.getItem('vigil.stats') !== '0';
  const statsBtn = h('button', { type: 'button', class: 'btn btn-small', 'aria-pressed': String(statsOn) }, 'Stats overlay');
  box.classList.toggle('hide-stats', !statsOn);
  statsBtn.addEventListener('click', () => {
    const on = box.classList.contains('hide-stats');
    box.classList.toggle('hide-stats', !on);
    statsBtn.setAttribute('aria-pressed', String(on));
    localStorage.setItem('vigil.stats', on ? '1' : '0');
  });

  const fsBtn = h('button', { type: 'button', class: 'btn btn-small' }, 'Full screen');
  fsBtn.addEventListener('click', () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else if (box.requestFullscreen) box.requestFullscreen().catch(() => {});
    else if (lv.video.webkitEnterFullscreen) lv.video.webkitEnterFullscreen();
  });

  const snap = h('a', { class: 'btn btn-small', href: snapshotUrl(name), target: '_blank', rel: 'noopener' }, 'Snapshot');
  snap.addEventListener('click', () => {
    snap.href = snapshotUrl(name);
  });

  const shareBtn = h('button', { id: 'share-open', type: 'button', class: 'btn btn-small' }, 'Share…');
  shareBtn.addEventListener('click', () => {
    openShareDialog({ kind: 'live', camera: name, stream: streamSel.value || 'main' }, shareBtn)
      .catch((e) => toast(`Could not open the share dialog: ${e.message}`, 'error'));
  });

  const info = h('dl', { class: 'kv' });
  view.append(
    h('div', { class: 'toolbar' },
      h('a', { href: '#/', class: 'btn btn-small btn-ghost', 'aria-label': 'Back to all cameras' }, '←'),
      h('h1', null, name), lv.badge,
      h('span', { class: 'spacer' }),
      streamSel, statsBtn, fsBtn, snap, shareBtn,
      h('a', { class: 'btn btn-small', href: `#/timeline/${enc}` }, 'Timeline')),
    h('div', { class: 'camera-layout' }, box, h('section', { class: 'card' }, h('h2', null, 'Status'), info)));

  const showInfo = (c) => {
    const rows = [];
    for (const s of (c.status && c.status.streams) || []) {
      const size = s.width && s.height ? ` ${s.width}×${s.height}` : '';
      const state = `${s.state}${s.reason ? ` (${s.reason})` : ''}`;
      rows.push(h('dt', null, `${s.stream} stream`),
        h('dd', null, `${state} · ${s.codec || '?'}${size} · ${s.fps.toFixed(1)} fps · ${fmtBitrate(s.bitrate_bps)} · last frame ${fmtAgo(s.last_frame_us)}`));
    }
    rows.push(h('dt', null, 'Motion'), h('dd', null, c.motion && c.motion.enabled
      ? (c.status && c.status.motion_active ? 'motion now' : 'watching') : 'detection off'));
    rows.push(h('dt', null, 'Recording'), h('dd', null, c.record && c.record.mode === 'motion'
      ? `on motion (${c.record.pre_roll_s} s before, ${c.record.post_roll_s} s after)` : 'continuous'));
    replace(info, rows);
  };
  showInfo(cam);
  lv.start();
  ctx.every(5000, async () => {
    try {
      showInfo(await api.get(`/api/cameras/${enc}`, { signal: ctx.signal }));
    } catch {
      // keep the last status
    }
  });
}
