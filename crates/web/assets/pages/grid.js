// #/ : every camera the user can see as a live tile (sub stream when there is one), a
// snapshot as poster while connecting, a status badge and the stats overlay. Tiles play
// only while visible on screen.

import * as api from '../api.js';
import { h, replace } from '../dom.js';
import { cameraState, liveView, smallStream } from '../liveview.js';

export async function render(view, params, ctx) {
  const statsToggle = h('button', { type: 'button', class: 'btn btn-small', 'aria-pressed': 'true' }, 'Stats');
  const grid = h('div', { id: 'grid', 'aria-label': 'Live cameras' });
  view.append(h('div', { class: 'toolbar' }, h('h1', null, 'Live'), h('span', { class: 'spacer' }), statsToggle), grid);

  const showStats = localStorage.getItem('vigil.stats') !== '0';
  const applyStats = (on) => {
    grid.classList.toggle('hide-stats', !on);
    statsToggle.setAttribute('aria-pressed', String(on));
  };
  applyStats(showStats);
  statsToggle.addEventListener('click', () => {
    const on = grid.classList.contains('hide-stats');
    localStorage.setItem('vigil.stats', on ? '1' : '0');
    applyStats(on);
  });

  const cameras = await api.get('/api/cameras', { signal: ctx.signal });
  if (!ctx.alive()) return;
  if (!cameras.length) {
    replace(grid, h('p', { class: 'empty' }, ctx.session.role === 'admin'
      ? ['No cameras yet. ', h('a', { href: '#/cameras' }, 'Add a camera'), '.']
      : 'No cameras are shared with you.'));
    return;
  }
  grid.classList.toggle('single', cameras.length === 1);

  const tiles = new Map();
  for (const cam of cameras) {
    const lv = liveView(cam.name, { stream: smallStream(cam) });
    const status = h('span', { class: 'badge offline', hidden: true });
    const motion = h('span', { class: 'badge motion', hidden: true }, 'motion');
    const enc = encodeURIComponent(cam.name);
    const tile = h('div', { class: 'tile', dataset: { camera: cam.name } },
      lv.video,
      h('a', { class: 'tile-link', href: `#/camera/${enc}`, 'aria-label': `Open ${cam.name}` }),
      h('div', { class: 'tile-head' },
        h('span', { class: 'tile-name' }, cam.name), lv.badge, status, motion,
        h('span', { class: 'tile-actions' }, h('a', { href: `#/timeline/${enc}` }, 'Timeline'))),
      lv.msg, lv.stats);
    grid.append(tile);
    tiles.set(cam.name, { lv, tile, motion, status });
    ctx.onCleanup(() => lv.stop());
    updateStatus(tiles.get(cam.name), cam);
  }

  // Play only visible tiles (phones with many cameras); everything when unsupported.
  if ('IntersectionObserver' in window) {
    const io = new IntersectionObserver((entries) => {
      for (const e of entries) {
        const t = tiles.get(e.target.dataset.camera);
        if (!t) continue;
        if (e.isIntersecting) t.lv.start();
        else t.lv.stop();
      }
    }, { rootMargin: '100px' });
    for (const t of tiles.values()) io.observe(t.tile);
    ctx.onCleanup(() => io.disconnect());
  } else {
    for (const t of tiles.values()) t.lv.start();
  }

  // Camera status (offline, motion) every 5 s.
  ctx.every(5000, async () => {
    try {
      const list = await api.get('/api/cameras', { signal: ctx.signal });
      for (const cam of list) {
        const t = tiles.get(cam.name);
        if (t) updateStatus(t, cam);
      }
    } catch {
      // keep the last status
    }
  });
}

function updateStatus(t, cam) {
  const state = cameraState(cam);
  t.motion.hidden = !(cam.status && cam.status.motion_active);
  t.tile.dataset.state = state;
  if (state === 'offline' || state === 'failed') {
    const main = (cam.status.streams || []).find((s) => s.stream === 'main');
    t.status.hidden = false;
    t.status.textContent = `camera ${state}`;
    t.status.title = main && main.reason ? main.reason : '';
  } else {
    t.status.hidden = true;
  }
}
