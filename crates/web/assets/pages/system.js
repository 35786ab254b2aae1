// #/system : version and uptime, storage use, per-camera stream status (state, fps,
// bitrate, last frame), the cloud tier's queue (backlog, last upload and error, losses), the
// alerts' status (MQTT, webhooks), the model and firmware of cameras added over ONVIF (a
// firmware older than the camera's minimum flagged) and, for admins, the audit log.

import * as api from '../api.js';
import { h, replace } from '../dom.js';
import { fmtAgo, fmtBitrate, fmtBytes, fmtDuration, fmtTime } from '../format.js';

export async function render(view, params, ctx) {
  const head = h('p', { class: 'muted' });
  const storage = h('div');
  const camBody = h('tbody');
  const alerts = h('div');
  const devices = h('tbody');
  const cloud = h('div', { id: 'cloud-status' });
  view.append(
    h('div', { class: 'toolbar' }, h('h1', null, 'System')), head,
    h('section', { class: 'card' }, h('h2', null, 'Storage'), storage),
    h('h2', null, 'Cameras'),
    h('div', { class: 'table-wrap' }, h('table', { id: 'camera-status' },
      h('thead', null, h('tr', null,
        ...['Camera', 'Stream', 'State', 'Codec', 'Size'].map((t) => h('th', { scope: 'col' }, t)),
        ...['fps', 'Bitrate'].map((t) => h('th', { scope: 'col', class: 'num' }, t)),
        h('th', { scope: 'col' }, 'Last frame'), h('th', { scope: 'col' }, 'Motion'))),
      camBody)),
    h('h2', null, 'Camera firmware'),
    h('div', { class: 'table-wrap' }, h('table', { id: 'camera-firmware' },
      h('thead', null, h('tr', null, ...['Camera', 'Model', 'Firmware', 'Minimum'].map((t) => h('th', { scope: 'col' }, t)))),
      devices)),
    h('h2', null, 'Cloud'), h('section', { class: 'card' }, cloud),
    h('h2', null, 'Alerts'), h('section', { class: 'card' }, alerts));

  const load = async () => {
    const s = await api.get('/api/system', { signal: ctx.signal });
    if (!ctx.alive()) return;
    head.textContent = `Vigil ${s.version || ''} · up ${fmtDuration(s.uptime_s)}`;
    renderStorage(storage, s.storage || {});
    const rows = [];
    for (const cam of s.cameras || []) {
      const streams = cam.streams && cam.streams.length ? cam.streams : [null];
      streams.forEach((st, i) => {
        rows.push(h('tr', { dataset: { camera: cam.name } },
          i === 0 ? h('th', { scope: 'row', rowspan: streams.length }, cam.name) : null,
          h('td', null, st ? st.stream : '—'),
          h('td', null, st ? h('span', { class: `badge ${st.state}`, title: st.reason || '' }, st.state) : '—',
            st && st.reason ? h('div', { class: 'hint' }, st.reason) : null),
          h('td', null, (st && st.codec) || '—'),
          h('td', null, st && st.width ? `${st.width}×${st.height}` : '—'),
          h('td', { class: 'num' }, st ? st.fps.toFixed(1) : '—'),
          h('td', { class: 'num' }, st ? fmtBitrate(st.bitrate_bps) : '—'),
          h('td', { title: st && st.last_frame_us ? fmtTime(st.last_frame_us) : '' }, st ? fmtAgo(st.last_frame_us) : '—'),
          i === 0 ? h('td', { rowspan: streams.length }, cam.motion_active ? h('span', { class: 'badge motion' }, 'motion') : 'quiet') : null));
      });
    }
    replace(camBody, rows.length ? rows : h('tr', null, h('td', { colspan: 9, class: 'empty' }, 'No cameras.')));
    const devs = s.onvif || [];
    replace(devices, devs.length ? devs.map((d) => h('tr', { dataset: { camera: d.camera } },
      h('th', { scope: 'row' }, d.camera),
      h('td', null, d.model || '—'),
      h('td', null, d.firmware || '—',
        d.outdated ? h('span', { class: 'badge error', title: `Older than ${d.min_firmware}: update the camera's firmware` }, 'outdated') : null),
      h('td', null, d.min_firmware || '—'))) : h('tr', null, h('td', { colspan: 4, class: 'empty' }, 'No camera added over ONVIF.')));
    renderCloud(cloud, s.cloud || { configured: false });
    replace(alerts, s.alerts && Object.keys(s.alerts).length ? tree(s.alerts) : h('p', { class: 'muted' }, 'No alerts configured (MQTT, webhooks: see the configuration file).'));
  };
  await load();
  ctx.every(3000, () => load().catch(() => {}));

  if (ctx.session.role === 'admin') {
    const audit = h('tbody');
    const more = h('button', { type: 'button', class: 'btn btn-small' }, 'Refresh');
    view.append(h('div', { class: 'toolbar' }, h('h2', null, 'Audit log'), h('span', { class: 'spacer' }), more),
      h('div', { class: 'table-wrap' }, h('table', null,
        h('thead', null, h('tr', null, ...['Time', 'User', 'Address', 'Action', 'Detail'].map((t) => h('th', { scope: 'col' }, t)))),
        audit)));
    const loadAudit = async () => {
      const rows = await api.get('/api/audit?limit=200', { signal: ctx.signal });
      if (!ctx.alive()) return;
      replace(audit, rows.length ? rows.map((r) => h('tr', null,
        h('td', null, fmtTime(r.time_us)), h('td', null, r.username || '—'), h('td', { class: 'mono' }, r.address || '—'),
        h('td', null, r.action), h('td', null, r.detail || ''))) : h('tr', null, h('td', { colspan: 5, class: 'empty' }, 'Nothing yet.')));
    };
    more.addEventListener('click', () => loadAudit().catch(() => {}));
    loadAudit().catch((e) => {
      if (e.name !== 'AbortError') replace(audit, h('tr', null, h('td', { colspan: 5, class: 'error' }, e.message)));
    });
  }
}

function renderStorage(el, st) {
  const used = st.used_bytes || 0;
  const limit = st.max_bytes || st.total_bytes || 0;
  const frac = limit ? Math.min(1, used / limit) : 0;
  const bar = h('div');
  bar.style.width = `${(frac * 100).toFixed(1)}%`;
  replace(el,
    h('div', { class: `meter${frac > 0.9 ? ' high' : ''}`, role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(frac * 100), 'aria-label': 'Storage used' }, bar),
    h('dl', { class: 'kv' },
      h('dt', null, 'Recordings'), h('dd', null, fmtBytes(used)),
      h('dt', null, 'Limit'), h('dd', null, st.max_bytes ? fmtBytes(st.max_bytes) : 'none (disk size)'),
      h('dt', null, 'Disk free'), h('dd', null, `${fmtBytes(st.free_bytes)} of ${fmtBytes(st.total_bytes)}`)));
}

function renderCloud(el, c) {
  if (c.configured === false) {
    replace(el, h('p', { class: 'muted' }, 'Cloud tier off: footage has one copy, on this disk ([cloud] in the configuration file, docs/cloud.md).'));
    return;
  }
  const lost = c.lost_files || 0;
  replace(el, h('dl', { class: 'kv' },
    h('dt', null, 'Bucket'), h('dd', null, `${c.bucket}${c.prefix ? `/${c.prefix}` : ''} at ${c.endpoint}`),
    h('dt', null, 'Encrypted to'), h('dd', null, `${c.recipients} key${c.recipients === 1 ? '' : 's'} (age)`),
    h('dt', null, 'Streams'), h('dd', null, (c.streams || []).join(', ') || 'none yet'),
    h('dt', null, 'Backlog'), h('dd', { dataset: { field: 'backlog' } }, c.pending_parts
      ? `${fmtBytes(c.pending_bytes)} in ${c.pending_parts} parts, oldest from ${fmtAgo(c.oldest_pending_us)}`
      : 'none'),
    h('dt', null, 'Last upload'), h('dd', null, c.last_upload_us ? fmtAgo(c.last_upload_us) : 'never'),
    h('dt', null, 'Last error'), h('dd', { class: c.last_error ? 'error' : 'muted' }, c.last_error || 'none'),
    h('dt', null, 'In the cloud'), h('dd', null, `${fmtBytes(c.uploaded_bytes)} (${c.uploaded_parts} parts)`),
    h('dt', null, 'Lost before upload'), h('dd', { class: lost ? 'error' : 'muted', dataset: { field: 'lost' } }, lost
      ? `${lost} files, ${fmtBytes(c.lost_bytes)} (deleted for disk space while the cloud was behind)`
      : 'none'),
    h('dt', null, 'Limits'), h('dd', null,
      `${c.max_upload_rate ? `${fmtBytes(c.max_upload_rate)}/s` : 'no rate limit'}, ${c.retention_s ? `kept ${fmtDuration(c.retention_s)}` : 'kept until deleted'}`)));
}

/** Any JSON as nested definition lists (all text, never markup). */
export function tree(v) {
  if (v === null || v === undefined) return h('span', { class: 'muted' }, '—');
  if (Array.isArray(v)) {
    if (!v.length) return h('span', { class: 'muted' }, 'none');
    return h('ul', null, v.map((x) => h('li', null, tree(x))));
  }
  if (typeof v === 'object') {
    return h('dl', { class: 'kv' }, Object.entries(v).map(([k, x]) => [h('dt', null, k.replace(/_/g, ' ')), h('dd', null, tree(x))]));
  }
  if (typeof v === 'boolean') return h('span', { class: v ? 'ok' : 'muted' }, v ? 'yes' : 'no');
  return h('span', null, String(v));
}
