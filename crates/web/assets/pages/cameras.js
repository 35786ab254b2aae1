// #/cameras (admin): cameras with their state; add, edit, test and remove through the API.
// The password field is write-only: left empty it keeps the stored password. Zones and
// masks are drawn on a snapshot (motion.zones). Cameras of the configuration file are
// read-only here. "Discover" sends a WS-Discovery Probe (POST /api/discover); adding a device
// found asks for its ONVIF credentials, reads its streams (POST /api/onvif/device) and
// pre-fills the add form, which then keeps the device's XAddr, model and firmware.

import * as api from '../api.js';
import { closeButton, confirmAction, field, h, replace, toast } from '../dom.js';
import { fmtBitrate } from '../format.js';
import { cameraState, snapshotUrl } from '../liveview.js';
import { ZoneEditor, validateZones } from '../zones.js';

export async function render(view, params, ctx) {
  const addBtn = h('button', { type: 'button', class: 'btn btn-primary', id: 'add-camera' }, 'Add camera');
  const discoverBtn = h('button', { type: 'button', class: 'btn', id: 'discover-cameras' }, 'Discover');
  const body = h('tbody');
  const table = h('div', { class: 'table-wrap' }, h('table', null,
    h('thead', null, h('tr', null, ...['Name', 'Main URL', 'State', 'Recording', 'Motion', ''].map((t, i) => h('th', { scope: 'col', class: i === 1 ? 'col-url' : null }, t)))),
    body));
  view.append(h('div', { class: 'toolbar' }, h('h1', null, 'Cameras'), h('span', { class: 'spacer' }), discoverBtn, addBtn), table);

  let cameras = [];
  const load = async () => {
    cameras = await api.get('/api/cameras', { signal: ctx.signal });
    if (!ctx.alive()) return;
    if (!cameras.length) {
      replace(body, h('tr', null, h('td', { colspan: 6, class: 'empty' }, 'No cameras yet.')));
      return;
    }
    replace(body, cameras.map((cam) => {
      const readOnly = cam.source === 'config';
      const edit = h('button', { type: 'button', class: 'btn btn-small', disabled: readOnly }, 'Edit');
      edit.addEventListener('click', () => openEditor(cam));
      const remove = h('button', { type: 'button', class: 'btn btn-small btn-danger', disabled: readOnly }, 'Remove');
      remove.addEventListener('click', async () => {
        if (!confirmAction(`Remove camera ${cam.name}? Its recordings stay until retention removes them.`)) return;
        try {
          await api.del(`/api/cameras/${encodeURIComponent(cam.name)}`);
          toast(`Removed ${cam.name}.`, 'ok');
          load();
        } catch (e) {
          toast(`Could not remove ${cam.name}: ${e.message}`, 'error');
        }
      });
      const state = cameraState(cam);
      const main = ((cam.status && cam.status.streams) || []).find((s) => s.stream === 'main');
      return h('tr', { dataset: { camera: cam.name } },
        h('th', { scope: 'row' }, h('a', { href: `#/camera/${encodeURIComponent(cam.name)}` }, cam.name),
          readOnly ? h('div', { class: 'hint' }, 'configuration file') : null),
        h('td', { class: 'mono col-url' }, cam.url),
        h('td', null, h('span', { class: `badge ${state}` }, state),
          main && main.state === 'streaming' ? h('div', { class: 'hint' }, `${main.fps.toFixed(1)} fps · ${fmtBitrate(main.bitrate_bps)}`) : null,
          main && main.reason ? h('div', { class: 'hint' }, main.reason) : null),
        h('td', null, cam.record && cam.record.mode === 'motion' ? 'on motion' : 'continuous'),
        h('td', null, cam.motion && cam.motion.enabled ? `on · ${(cam.motion.zones || []).length} zones/masks` : 'off'),
        h('td', { class: 'actions' }, edit, remove));
    }));
  };
  addBtn.addEventListener('click', () => openEditor(null));
  discoverBtn.addEventListener('click', () => {
    const dlg = discoverDialog((prefill) => openEditor(null, prefill));
    document.body.append(dlg);
    dlg.addEventListener('close', () => dlg.remove());
    ctx.onCleanup(() => dlg.close());
    dlg.showModal();
  });
  await load();
  ctx.every(10000, () => load().catch(() => {}));

  function openEditor(cam, prefill) {
    const dlg = cameraDialog(cam, async () => {
      dlg.close();
      await load();
    }, prefill);
    document.body.append(dlg);
    dlg.addEventListener('close', () => dlg.remove());
    ctx.onCleanup(() => dlg.close());
    dlg.showModal();
  }
}

/** Days (possibly fractional) ↔ seconds for the retention fields. */
const daysToS = (v) => {
  const d = Number.parseFloat(v);
  return Number.isFinite(d) && d > 0 ? Math.round(d * 86400) : null;
};
const sToDays = (s) => (s ? String(Math.round((s / 86400) * 100) / 100) : '');

/** A camera name from a device name: the allowed characters only. */
const suggestName = (s) => (s || '').replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64);

/**
 * The Discover dialog: probes, lists what answered (name, model, address, added or not), and
 * for "Add" asks the ONVIF credentials, reads the device's streams and calls `onPicked` with
 * what pre-fills the add form.
 */
function discoverDialog(onPicked) {
  const body = h('tbody');
  const status = h('p', { role: 'status', class: 'muted' }, 'Searching the network (3 s)…');
  const again = h('button', { type: 'button', class: 'btn' }, 'Search again');
  const close = h('button', { type: 'button', class: 'btn btn-ghost' }, 'Close');
  const creds = h('form', { class: 'dlg-body', hidden: true, novalidate: true });
  const dlg = h('dialog', { 'aria-labelledby': 'discover-dlg-title', id: 'discover-dialog' },
    h('div', { class: 'dlg-head' }, h('h2', { id: 'discover-dlg-title' }, 'Discover cameras'), closeButton()),
    h('div', { class: 'dlg-body' }, status,
      h('div', { class: 'table-wrap' }, h('table', null,
        h('thead', null, h('tr', null, ...['Name', 'Model', 'Address', ''].map((t) => h('th', { scope: 'col' }, t)))),
        body)),
      creds,
      h('div', { class: 'form-actions' }, again, close)));
  close.addEventListener('click', () => dlg.close());

  const askCredentials = (dev) => {
    const user = h('input', { name: 'onvif_username', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', required: true });
    const pass = h('input', { name: 'onvif_password', type: 'password', autocomplete: 'new-password' });
    const err = h('p', { class: 'form-error', role: 'alert' });
    const go = h('button', { type: 'submit' }, 'Read streams');
    replace(creds, h('fieldset', null, h('legend', null, `Credentials of ${dev.name || dev.address}`),
      h('div', { class: 'grid2' }, field('Camera user', user), field('Camera password', pass, 'Its ONVIF user (on a Vigil camera: vigil user onvif).'))),
    err, h('div', { class: 'form-actions' }, go));
    creds.hidden = false;
    user.focus();
    creds.onsubmit = async (e) => {
      e.preventDefault();
      err.textContent = '';
      go.disabled = true;
      try {
        const xaddr = dev.xaddrs[0];
        const r = await api.post('/api/onvif/device', { xaddr, username: user.value.trim(), password: pass.value });
        if (!r.url) throw new Error('the camera offers no RTSP stream');
        dlg.close();
        onPicked({
          name: suggestName(dev.name || r.model),
          url: r.url,
          sub_url: r.sub_url,
          username: user.value.trim(),
          password: pass.value,
          onvif: { xaddr: r.xaddr, model: r.model, firmware: r.firmware },
        });
      } catch (e2) {
        err.textContent = e2.message;
      } finally {
        go.disabled = false;
      }
    };
  };

  const search = async () => {
    again.disabled = true;
    creds.hidden = true;
    status.textContent = 'Searching the network (3 s)…';
    replace(body);
    try {
      const found = await api.post('/api/discover', {});
      status.textContent = found.length ? `${found.length} device${found.length === 1 ? '' : 's'} answered.` : 'No ONVIF device answered.';
      replace(body, found.map((dev) => {
        const add = h('button', { type: 'button', class: 'btn btn-small', disabled: !dev.xaddrs.length }, 'Add');
        add.addEventListener('click', () => askCredentials(dev));
        return h('tr', { dataset: { endpoint: dev.endpoint } },
          h('th', { scope: 'row' }, dev.name || '—'),
          h('td', null, dev.model || '—'),
          h('td', { class: 'mono' }, dev.address),
          h('td', { class: 'actions' }, dev.added_as ? h('span', { class: 'muted' }, `added as ${dev.added_as}`) : add));
      }));
    } catch (e) {
      status.textContent = `Discovery failed: ${e.message}`;
    } finally {
      again.disabled = false;
    }
  };
  again.addEventListener('click', () => search());
  search();
  return dlg;
}

function cameraDialog(cam, onSaved, prefill) {
  const isNew = !cam;
  const m = (cam && cam.motion) || { enabled: true, fps: 5, sensitivity: 50, min_area_pct: 0.5, min_duration_s: 0.4, cooldown_s: 2, zones: [] };
  const rec = (cam && cam.record) || { mode: 'continuous' };
  const inp = (attrs) => h('input', attrs);
  const f = {
    name: inp({ name: 'name', required: true, pattern: '[A-Za-z0-9_-]{1,64}', maxlength: 64, value: cam ? cam.name : '', readonly: !isNew, autocapitalize: 'none', spellcheck: 'false' }),
    url: inp({ name: 'url', type: 'url', required: true, placeholder: 'rtsp://192.168.1.20:554/stream1', value: cam ? cam.url : '', spellcheck: 'false' }),
    sub_url: inp({ name: 'sub_url', type: 'url', placeholder: 'optional', value: (cam && cam.sub_url) || '', spellcheck: 'false' }),
    username: inp({ name: 'username', autocomplete: 'off', value: (cam && cam.username) || '', autocapitalize: 'none', spellcheck: 'false' }),
    password: inp({ name: 'password', type: 'password', autocomplete: 'new-password', placeholder: cam && cam.has_password ? 'unchanged (stored)' : 'none' }),
    transport: h('select', { name: 'transport' }, h('option', { value: 'tcp' }, 'TCP'), h('option', { value: 'udp' }, 'UDP')),
    audio: inp({ name: 'audio', type: 'checkbox', checked: cam ? cam.audio !== false : true }),
    max_age: inp({ name: 'max_age_days', type: 'number', min: 0, step: 'any', value: sToDays(cam && cam.max_age_s), placeholder: 'storage limit only' }),
    event_max_age: inp({ name: 'event_max_age_days', type: 'number', min: 0, step: 'any', value: sToDays(cam && cam.event_max_age_s), placeholder: 'as above' }),
    mode: h('select', { name: 'record_mode' }, h('option', { value: 'continuous' }, 'Continuous'), h('option', { value: 'motion' }, 'Only on motion')),
    pre: inp({ name: 'pre_roll_s', type: 'number', min: 0, max: 60, step: 1, value: rec.pre_roll_s ?? 5 }),
    post: inp({ name: 'post_roll_s', type: 'number', min: 0, max: 600, step: 1, value: rec.post_roll_s ?? 10 }),
    m_enabled: inp({ name: 'motion_enabled', type: 'checkbox', checked: m.enabled !== false }),
    m_fps: inp({ name: 'motion_fps', type: 'number', min: 0.5, max: 30, step: 0.5, value: m.fps }),
    m_sens: inp({ name: 'sensitivity', type: 'range', min: 1, max: 100, step: 1, value: m.sensitivity }),
    m_area: inp({ name: 'min_area_pct', type: 'number', min: 0, max: 100, step: 0.1, value: m.min_area_pct }),
    m_dur: inp({ name: 'min_duration_s', type: 'number', min: 0, max: 60, step: 0.1, value: m.min_duration_s }),
    m_cool: inp({ name: 'cooldown_s', type: 'number', min: 0, max: 600, step: 0.5, value: m.cooldown_s }),
  };
  f.transport.value = (cam && cam.transport) || 'tcp';
  // Pre-filled from an ONVIF device (Discover → Add).
  if (isNew && prefill) {
    f.name.value = prefill.name || '';
    f.url.value = prefill.url || '';
    f.sub_url.value = prefill.sub_url || '';
    f.username.value = prefill.username || '';
    f.password.value = prefill.password || '';
  }
  // A camera that came from ONVIF: its firmware minimum (older firmware is flagged on the
  // System page, the outdated-firmware risk).
  const onvif = isNew ? (prefill && prefill.onvif) : (cam && cam.onvif);
  f.min_firmware = inp({ name: 'min_firmware', autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. 5.7.3', maxlength: 64 });
  if (onvif && onvif.min_firmware) f.min_firmware.value = onvif.min_firmware;
  const firmwareField = onvif
    ? h('div', { class: 'grid2' },
      field('Model and firmware (ONVIF)', h('output', null, `${onvif.model || '?'} · ${onvif.firmware || '?'}`)),
      field('Minimum firmware', f.min_firmware, 'Older firmware is flagged on the System page.'))
    : null;
  f.mode.value = rec.mode === 'motion' ? 'motion' : 'continuous';
  const sensOut = h('output', null, String(m.sensitivity));
  f.m_sens.addEventListener('input', () => { sensOut.textContent = f.m_sens.value; });
  const rollFields = h('div', { class: 'grid2' }, field('Seconds before motion', f.pre), field('Seconds after motion', f.post));
  const syncMode = () => { rollFields.hidden = f.mode.value !== 'motion'; };
  f.mode.addEventListener('change', syncMode);
  syncMode();

  const zones = new ZoneEditor(isNew ? null : snapshotUrl(cam.name), m.zones || []);
  const err = h('p', { class: 'form-error', role: 'alert' });
  const testOut = h('p', { role: 'status' });
  const testBtn = h('button', { type: 'button', class: 'btn' }, 'Test connection');
  const saveBtn = h('button', { type: 'submit' }, isNew ? 'Add camera' : 'Save');
  const cancel = h('button', { type: 'button', class: 'btn btn-ghost' }, 'Cancel');

  const form = h('form', { class: 'dlg-body', id: 'camera-form', novalidate: true },
    h('fieldset', null, h('legend', null, 'Connection'),
      h('div', { class: 'grid2' },
        field('Name', f.name, isNew ? 'Letters, digits, _ and -; names the recording folder.' : 'Cannot be changed.'),
        field('Transport', f.transport)),
      field('Main stream URL', f.url, 'Without the credentials.'),
      field('Sub stream URL', f.sub_url, 'A small stream for the grid and motion detection.'),
      h('div', { class: 'grid2' },
        field('Camera user', f.username),
        field('Camera password', f.password, cam && cam.has_password ? 'Leave empty to keep the stored password.' : 'Never shown again once saved.')),
      field('Record audio', f.audio),
      firmwareField),
    h('fieldset', null, h('legend', null, 'Recording'),
      h('div', { class: 'grid2' }, field('Mode', f.mode), field('Keep recordings (days)', f.max_age), field('Keep motion footage (days)', f.event_max_age)),
      rollFields),
    h('fieldset', null, h('legend', null, 'Motion detection'),
      h('div', { class: 'grid2' },
        field('Detect motion', f.m_enabled),
        field('Analysed frames per second', f.m_fps),
        h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Sensitivity ', sensOut), f.m_sens),
        field('Minimum area (% of picture)', f.m_area),
        field('Minimum duration (s)', f.m_dur),
        field('Cool-down before the end (s)', f.m_cool))),
    h('fieldset', null, h('legend', null, 'Zones and masks'), zones.el),
    err, testOut,
    h('div', { class: 'form-actions' }, saveBtn, testBtn, cancel));
  // Checkbox fields laid out in a row.
  for (const cb of [f.audio, f.m_enabled]) cb.closest('label')?.classList.add('check');

  const dlg = h('dialog', { 'aria-labelledby': 'camera-dlg-title' },
    h('div', { class: 'dlg-head' }, h('h2', { id: 'camera-dlg-title' }, isNew ? 'Add camera' : `Edit ${cam.name}`), closeButton()), form);
  dlg.addEventListener('close', () => zones.destroy());
  cancel.addEventListener('click', () => dlg.close());

  const num = (el, def) => {
    const v = Number.parseFloat(el.value);
    return Number.isFinite(v) ? v : def;
  };
  const spec = () => {
    const s = {
      name: f.name.value.trim(),
      url: f.url.value.trim(),
      sub_url: f.sub_url.value.trim() || null,
      username: f.username.value.trim() || null,
      transport: f.transport.value,
      audio: f.audio.checked,
      max_age_s: daysToS(f.max_age.value),
      event_max_age_s: daysToS(f.event_max_age.value),
      record: f.mode.value === 'motion'
        ? { mode: 'motion', pre_roll_s: Math.round(num(f.pre, 5)), post_roll_s: Math.round(num(f.post, 10)) }
        : { mode: 'continuous' },
      motion: {
        enabled: f.m_enabled.checked,
        fps: num(f.m_fps, 5),
        sensitivity: Math.round(num(f.m_sens, 50)),
        min_area_pct: num(f.m_area, 0.5),
        min_duration_s: num(f.m_dur, 0.4),
        cooldown_s: num(f.m_cool, 2),
        zones: zones.value(),
      },
    };
    // Write-only: an empty field keeps the stored password (the key is left out).
    if (f.password.value) s.password = f.password.value;
    if (onvif) s.onvif = { ...onvif, min_firmware: f.min_firmware.value.trim() || null };
    return s;
  };
  const check = (s) => {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(s.name)) return 'The name is 1-64 of A-Z a-z 0-9 _ -.';
    if (!/^rtsps?:\/\//i.test(s.url)) return 'The main URL must start with rtsp:// (or rtsps://).';
    if (s.sub_url && !/^rtsps?:\/\//i.test(s.sub_url)) return 'The sub stream URL must start with rtsp://.';
    if (/^rtsps?:\/\/[^/]*@/i.test(s.url) || (s.sub_url && /^rtsps?:\/\/[^/]*@/i.test(s.sub_url))) {
      return 'Put the credentials in the user and password fields, not in the URL.';
    }
    const zerr = validateZones(s.motion.zones);
    return zerr.length ? zerr.join('; ') : '';
  };

  testBtn.addEventListener('click', async () => {
    err.textContent = '';
    const s = spec();
    const problem = check(s);
    if (problem) {
      err.textContent = problem;
      return;
    }
    testBtn.disabled = true;
    testOut.className = 'muted';
    testOut.textContent = 'Connecting to the camera (up to 10 s)…';
    try {
      const r = await api.post('/api/cameras/test', s);
      testOut.className = 'ok';
      testOut.textContent = `Works: ${r.codec} ${r.width}×${r.height}${r.audio ? ', with audio' : ''}.`;
    } catch (e) {
      testOut.className = 'error';
      testOut.textContent = `Test failed: ${e.message}`;
    } finally {
      testBtn.disabled = false;
    }
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    const s = spec();
    const problem = check(s);
    if (problem) {
      err.textContent = problem;
      return;
    }
    saveBtn.disabled = true;
    try {
      if (isNew) await api.post('/api/cameras', s);
      else await api.put(`/api/cameras/${encodeURIComponent(cam.name)}`, s);
      toast(isNew ? `Added ${s.name}.` : `Saved ${s.name}.`, 'ok');
      await onSaved();
    } catch (e2) {
      err.textContent = e2.message;
    } finally {
      saveBtn.disabled = false;
    }
  });
  return dlg;
}
