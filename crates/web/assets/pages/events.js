// #/events : motion events, newest first, filtered by camera, zone and day; each with its
// thumbnail; a click plays it on the timeline page with 5 s of pre-roll.

import * as api from '../api.js';
import { field, h, replace } from '../dom.js';
import { dayRange, fmtDuration, fmtTime } from '../format.js';

const PRE_ROLL_US = 5e6;
const PAGE = 100;

export async function render(view, params, ctx) {
  const camSel = h('select', { name: 'camera' }, h('option', { value: '' }, 'All cameras'));
  const zoneSel = h('select', { name: 'zone' }, h('option', { value: '' }, 'All zones'));
  const day = h('input', { type: 'date', name: 'day' });
  const refresh = h('button', { type: 'button', class: 'btn' }, 'Refresh');
  const list = h('div', { class: 'events', 'aria-live': 'polite', 'aria-busy': 'true' });
  const more = h('button', { type: 'button', class: 'btn', hidden: true }, 'Older events');
  const count = h('span', { class: 'muted' });
  view.append(
    h('div', { class: 'toolbar' }, h('h1', null, 'Events'), count, h('span', { class: 'spacer' }), refresh),
    h('form', { class: 'toolbar', role: 'search', 'aria-label': 'Filter events' },
      field('Camera', camSel), field('Zone', zoneSel), field('Day', day)),
    list, h('p', null, more));

  // Filters come from and go to the query (#/events?camera=…&zone=…&day=…).
  const q = ctx.query;
  const cameras = await api.get('/api/cameras', { signal: ctx.signal });
  if (!ctx.alive()) return;
  for (const c of cameras) camSel.append(h('option', { value: c.name }, c.name));
  camSel.value = q.get('camera') || '';
  day.value = q.get('day') || '';

  const fillZones = () => {
    const names = new Set();
    for (const c of cameras) {
      if (camSel.value && c.name !== camSel.value) continue;
      for (const z of (c.motion && c.motion.zones) || []) if (z.kind !== 'mask') names.add(z.name);
    }
    const keep = zoneSel.value || q.get('zone') || '';
    replace(zoneSel, h('option', { value: '' }, 'All zones'), [...names].sort().map((n) => h('option', { value: n }, n)));
    zoneSel.value = names.has(keep) ? keep : '';
  };
  fillZones();

  let oldest = null;
  const shown = new Set();
  const load = async (append) => {
    list.setAttribute('aria-busy', 'true');
    const range = dayRange(day.value);
    const query = { camera: camSel.value, zone: zoneSel.value, limit: PAGE };
    if (range) [query.start_us, query.end_us] = range;
    if (append && oldest !== null) query.end_us = oldest;
    let events;
    try {
      events = await api.get(api.url('/api/events', query), { signal: ctx.signal });
    } catch (e) {
      if (e.name === 'AbortError') return;
      replace(list, h('p', { class: 'error', role: 'alert' }, `Could not load events: ${e.message}`));
      return;
    } finally {
      list.setAttribute('aria-busy', 'false');
    }
    if (!ctx.alive()) return;
    if (!append) {
      list.replaceChildren();
      shown.clear();
    }
    for (const ev of events) {
      // Paging by end time can return an event overlapping the boundary twice.
      if (shown.has(ev.id)) continue;
      shown.add(ev.id);
      list.append(card(ev));
    }
    if (events.length) oldest = Math.min(...events.map((e) => e.start_us));
    more.hidden = events.length < PAGE;
    if (!list.children.length) list.append(h('p', { class: 'empty' }, 'No motion events match.'));
    count.textContent = `${list.querySelectorAll('.event').length} shown`;
  };

  const onFilter = () => {
    const p = new URLSearchParams();
    if (camSel.value) p.set('camera', camSel.value);
    if (zoneSel.value) p.set('zone', zoneSel.value);
    if (day.value) p.set('day', day.value);
    history.replaceState(null, '', `#/events${p.toString() ? `?${p}` : ''}`);
    oldest = null;
    load(false);
  };
  camSel.addEventListener('change', () => {
    fillZones();
    onFilter();
  });
  zoneSel.addEventListener('change', onFilter);
  day.addEventListener('change', onFilter);
  refresh.addEventListener('click', onFilter);
  more.addEventListener('click', () => load(true));
  await load(false);
}

function card(ev) {
  const dur = ev.end_us ? fmtDuration((ev.end_us - ev.start_us) / 1e6) : 'ongoing';
  const thumb = ev.has_thumbnail
    ? h('img', { class: 'thumb', src: `/api/events/${encodeURIComponent(ev.id)}/thumbnail.jpg`, alt: '', loading: 'lazy', width: 320, height: 180 })
    : h('div', { class: 'thumb none' }, 'no picture');
  const href = `#/timeline/${encodeURIComponent(ev.camera)}?t=${Math.round(ev.start_us - PRE_ROLL_US)}`;
  return h('a', { class: 'event', href, dataset: { eventId: ev.id, camera: ev.camera }, 'aria-label': `Motion on ${ev.camera} at ${fmtTime(ev.start_us)}, play` },
    thumb,
    h('div', { class: 'meta' },
      h('div', { class: 'row' }, h('strong', null, ev.camera), h('span', { class: 'muted' }, dur)),
      h('div', { class: 'muted' }, fmtTime(ev.start_us)),
      h('div', { class: 'row' },
        h('span', { class: 'chips' }, (ev.zones && ev.zones.length ? ev.zones : ['whole picture']).map((z) => h('span', { class: 'badge' }, z))),
        h('span', { class: 'muted', title: 'peak score' }, `${Math.round((ev.peak_score || 0) * 100)} %`))));
}
