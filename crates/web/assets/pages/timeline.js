// #/timeline/NAME[?t=US] : recordings of one camera on a zoomable timeline (minutes to
// days), gaps and motion events drawn on it; a click or drag plays from that moment in
// video#playback (export.mp4 of a 10-minute window, the next window fetched at its end);
// select#speed 1/2/4/8; the export range in #range-start/#range-end and a#download;
// button#share-open makes a share link to that range (share-dialog.js).

import * as api from '../api.js';
import { field, h, replace, toast } from '../dom.js';
import { fmtDuration, fmtTime, fromLocalInput, toLocalInput } from '../format.js';
import { openShareDialog } from '../share-dialog.js';
import { Timeline } from '../timeline.js';
import { playableFrom } from '../timeline-math.js';

const WINDOW_US = 10 * 60e6; // one export.mp4 request
const PRE_ROLL_US = 5e6;

export async function render(view, params, ctx) {
  const name = params.name;
  const enc = encodeURIComponent(name);
  document.title = `${name} timeline · Vigil`;
  const startParam = Number(ctx.query.get('t'));

  // --- elements ---
  const video = h('video', { id: 'playback', controls: true, playsinline: true, preload: 'auto', 'aria-label': `Recording of ${name}` });
  const pbMsg = h('div', { class: 'pb-msg', role: 'status' }, 'Click the timeline to play a moment.');
  const pbTime = h('span', { class: 'pb-time mono', 'aria-live': 'off' }, '—');
  const speed = h('select', { id: 'speed', 'aria-label': 'Playback speed' },
    ...[1, 2, 4, 8].map((s) => h('option', { value: String(s) }, `${s}×`)));
  const canvas = h('canvas', { id: 'timeline' });
  const rangeStart = h('input', { id: 'range-start', type: 'datetime-local', step: 1 });
  const rangeEnd = h('input', { id: 'range-end', type: 'datetime-local', step: 1 });
  const download = h('a', { id: 'download', class: 'btn btn-primary', 'aria-disabled': 'true' }, 'Download MP4');
  const shareBtn = h('button', { id: 'share-open', type: 'button', class: 'btn', disabled: true }, 'Share…');
  const rangeInfo = h('span', { class: 'muted' });
  const eventsList = h('div', { class: 'events' });
  const btn = (text, label, fn) => {
    const b = h('button', { type: 'button', class: 'btn btn-small', 'aria-label': label || text }, text);
    b.addEventListener('click', fn);
    return b;
  };

  let tl = null;
  const spans = [['10 min', 10 * 60e6], ['1 h', 3600e6], ['6 h', 6 * 3600e6], ['1 day', 86400e6], ['7 days', 7 * 86400e6]];
  view.append(
    h('div', { class: 'toolbar' },
      h('a', { href: `#/camera/${enc}`, class: 'btn btn-small btn-ghost', 'aria-label': `Back to ${name} live` }, '←'),
      h('h1', null, `${name} · timeline`), h('span', { class: 'spacer' }),
      h('a', { class: 'btn btn-small', href: `#/camera/${enc}` }, 'Live')),
    h('div', { class: 'playback' }, video, pbMsg),
    h('div', { class: 'toolbar' },
      pbTime, h('span', { class: 'spacer' }),
      h('label', { class: 'field check' }, h('span', { class: 'field-label' }, 'Speed'), speed)),
    h('div', { class: 'toolbar', role: 'group', 'aria-label': 'Timeline zoom' },
      btn('◀', 'Earlier', () => tl.pan(-0.5)),
      btn('−', 'Zoom out', () => tl.zoom(2)),
      btn('+', 'Zoom in', () => tl.zoom(0.5)),
      btn('▶', 'Later', () => tl.pan(0.5)),
      ...spans.map(([label, us]) => btn(label, `Show ${label}`, () => tl.show(us, tl.playhead ?? undefined))),
      btn('Now', 'Go to now', () => tl.show(tl.end - tl.start))),
    canvas,
    h('div', { class: 'legend' },
      h('span', null, h('i', { class: 'l-rec' }), 'recorded'), h('span', null, h('i', { class: 'l-cloud' }), 'in the cloud only'),
      h('span', null, h('i', { class: 'l-gap' }), 'gap'),
      h('span', null, h('i', { class: 'l-ev' }), 'motion'), h('span', null, h('i', { class: 'l-sel' }), 'export range (shift+drag)')),
    h('section', { class: 'card' },
      h('h2', null, 'Export'),
      h('div', { class: 'range-row' },
        field('From', rangeStart), field('To', rangeEnd),
        btn('From playhead', 'Set start at the playhead', () => setRange(tl.playhead, null)),
        btn('To playhead', 'Set end at the playhead', () => setRange(null, tl.playhead)),
        download, shareBtn, rangeInfo)),
    h('h2', null, 'Motion events in view'), eventsList);

  // --- state ---
  let ranges = [];
  let win = null; // the playing window {start, end}
  let rangeTouched = false;
  let fetchCtl = null;
  let fetchTimer = 0;

  tl = new Timeline(canvas, {
    onSeek: (t) => playFrom(t),
    onView: () => scheduleFetch(),
    onSelect: (a, b) => {
      rangeTouched = true;
      setRange(a, b);
    },
  });
  ctx.onCleanup(() => {
    tl.destroy();
    clearTimeout(fetchTimer);
    if (fetchCtl) fetchCtl.abort();
    video.removeAttribute('src');
    video.load();
  });

  function setRange(a, b) {
    if (Number.isFinite(a)) rangeStart.value = toLocalInput(a);
    if (Number.isFinite(b)) rangeEnd.value = toLocalInput(b);
    updateDownload();
  }

  function updateDownload() {
    const a = fromLocalInput(rangeStart.value);
    const b = fromLocalInput(rangeEnd.value);
    tl.setSelection(a, b);
    if (Number.isFinite(a) && Number.isFinite(b) && b > a) {
      download.href = api.url(`/api/cameras/${enc}/export.mp4`, { start_us: Math.round(a), end_us: Math.round(b), stream: 'main', download: 1 });
      download.setAttribute('download', `${name}-${rangeStart.value.replace(/[:T]/g, '-')}.mp4`);
      download.removeAttribute('aria-disabled');
      rangeInfo.textContent = fmtDuration((b - a) / 1e6);
      shareBtn.disabled = false;
    } else {
      shareBtn.disabled = true;
      download.removeAttribute('href');
      download.setAttribute('aria-disabled', 'true');
      rangeInfo.textContent = Number.isFinite(a) && Number.isFinite(b) ? 'The end must be after the start.' : '';
    }
  }
  for (const inp of [rangeStart, rangeEnd]) {
    for (const type of ['input', 'change']) {
      inp.addEventListener(type, () => {
        rangeTouched = true;
        updateDownload();
      });
    }
  }
  // Values set by a script without an event (automation, autofill) still count: the link is
  // rebuilt before it is followed and whenever the inputs differ from what it was built from.
  download.addEventListener('click', (e) => {
    updateDownload();
    if (!download.hasAttribute('href')) e.preventDefault();
  });
  shareBtn.addEventListener('click', () => {
    updateDownload();
    const a = fromLocalInput(rangeStart.value);
    const b = fromLocalInput(rangeEnd.value);
    if (!(Number.isFinite(a) && Number.isFinite(b) && b > a)) return;
    // The stream played and exported here is the main one.
    openShareDialog({ kind: 'clip', camera: name, stream: 'main', start_us: Math.round(a), end_us: Math.round(b) }, shareBtn)
      .catch((e) => toast(`Could not open the share dialog: ${e.message}`, 'error'));
  });
  let seen = '';
  ctx.every(500, () => {
    const now = `${rangeStart.value}|${rangeEnd.value}`;
    if (now !== seen) {
      seen = now;
      updateDownload();
    }
  });

  // --- data ---
  function scheduleFetch() {
    clearTimeout(fetchTimer);
    fetchTimer = setTimeout(fetchData, 150);
  }

  async function fetchData() {
    if (fetchCtl) fetchCtl.abort();
    const ctl = new AbortController();
    fetchCtl = ctl;
    const span = tl.end - tl.start;
    const q = { start_us: Math.round(tl.start - span / 2), end_us: Math.round(tl.end + span / 2) };
    try {
      const [rec, events] = await Promise.all([
        api.get(api.url(`/api/cameras/${enc}/recordings`, { ...q, stream: 'main' }), { signal: ctl.signal }),
        api.get(api.url('/api/events', { camera: name, ...q, limit: 500 }), { signal: ctl.signal }).catch(() => []),
      ]);
      if (ctl.signal.aborted || !ctx.alive()) return;
      const cloudRanges = (rec && rec.cloud_ranges) || [];
      // Cloud-only footage plays like the disk's (the server reads it from the bucket).
      ranges = [...((rec && rec.ranges) || []), ...cloudRanges];
      tl.setData({ ranges: (rec && rec.ranges) || [], cloudRanges, gaps: (rec && rec.gaps) || [], events: events || [] });
      showEvents(events || []);
      if (!rangeTouched && ranges.length) {
        // Default export range: the last recorded minute.
        const last = ranges.reduce((a, r) => (r.end_us > a.end_us ? r : a));
        setRange(Math.max(last.start_us, last.end_us - 60e6), last.end_us);
      }
    } catch (e) {
      if (e.name !== 'AbortError' && ctx.alive()) pbMsg.textContent = `Could not load recordings: ${e.message}`;
    }
  }

  function showEvents(events) {
    const inView = events.filter((e) => (e.end_us ?? Date.now() * 1000) >= tl.start && e.start_us <= tl.end);
    if (!inView.length) {
      replace(eventsList, h('p', { class: 'empty' }, 'No motion events in this part of the timeline.'));
      return;
    }
    replace(eventsList, inView.slice(0, 60).map((e) => {
      const b = h('button', { type: 'button', class: 'btn btn-small' },
        `${fmtTime(e.start_us)}${e.zones && e.zones.length ? ` · ${e.zones.join(', ')}` : ''}`);
      b.addEventListener('click', () => playFrom(e.start_us - PRE_ROLL_US));
      return b;
    }));
  }

  // --- playback ---
  function playFrom(t) {
    const nowUs = Date.now() * 1000;
    let start = ranges.length ? playableFrom(ranges, t) : t;
    if (start === null) {
      pbMsg.textContent = 'Nothing was recorded after this moment.';
      return;
    }
    start = Math.round(Math.min(start, nowUs - 2e6));
    const end = Math.round(Math.min(start + WINDOW_US, nowUs));
    if (end - start < 1e6) {
      pbMsg.textContent = 'This is the live edge: open the live view.';
      return;
    }
    // `first` is when the file really starts: the key frame at or before `start` (the
    // server says so in X-Vigil-Start-Us); the player seeks from there to `start`.
    const w = { start, end, first: start };
    win = w;
    pbMsg.textContent = 'Loading…';
    tl.setPlayhead(start);
    const src = api.url(`/api/cameras/${enc}/export.mp4`, { start_us: start, end_us: end, stream: 'main' });
    fetch(src, { method: 'HEAD', credentials: 'same-origin' })
      .then((r) => {
        const first = Number(r.headers.get('x-vigil-start-us'));
        if (win === w && Number.isFinite(first) && first > 0 && first <= w.start) {
          w.first = first;
          seekIntoFile(w);
        }
      })
      .catch(() => {});
    video.src = src;
    applySpeed();
    const p = video.play();
    if (p && p.catch) {
      p.catch((e) => {
        if (e.name === 'NotAllowedError') {
          // Autoplay with sound refused: play muted.
          video.muted = true;
          video.play().catch(() => {});
        }
      });
    }
  }

  function applySpeed() {
    const r = Number(speed.value) || 1;
    video.defaultPlaybackRate = r;
    video.playbackRate = r;
  }
  /** Once both the metadata and the file's real start are known, start at the asked moment. */
  function seekIntoFile(w) {
    if (win !== w || w.seeked || video.readyState < 1 || w.first >= w.start) return;
    w.seeked = true;
    const offset = (w.start - w.first) / 1e6;
    if (offset > 0 && offset < (video.duration || Infinity)) video.currentTime = offset;
  }
  speed.addEventListener('change', applySpeed);
  video.addEventListener('loadedmetadata', () => {
    applySpeed();
    if (win) seekIntoFile(win);
  });
  video.addEventListener('playing', () => {
    pbMsg.textContent = '';
  });
  video.addEventListener('timeupdate', () => {
    if (!win) return;
    const t = win.first + video.currentTime * 1e6;
    tl.setPlayhead(t);
    pbTime.textContent = fmtTime(t);
    // Follow the playhead when it leaves the visible window.
    if (!video.paused && (t > tl.end || t < tl.start)) tl.show(tl.end - tl.start, t + (tl.end - tl.start) * 0.3);
  });
  video.addEventListener('ended', () => {
    if (!win) return;
    if (win.end >= Date.now() * 1000 - 3e6) {
      pbMsg.textContent = 'Reached the live edge.';
      return;
    }
    playFrom(win.end);
  });
  video.addEventListener('error', () => {
    if (!win || !video.getAttribute('src')) return;
    pbMsg.textContent = 'No recording can be played at this moment.';
  });

  // --- start ---
  const initial = Number.isFinite(startParam) && startParam > 0 ? startParam : null;
  if (initial) {
    tl.show(30 * 60e6, initial);
  } else {
    // The last hour, or closer when the recordings are younger (a new camera): its few
    // minutes are then wide enough to click. Decided before the window is first shown.
    let span = 3600e6;
    const nowUs = Date.now() * 1000;
    try {
      const rec = await api.get(api.url(`/api/cameras/${enc}/recordings`, { start_us: nowUs - 3600e6, end_us: nowUs, stream: 'main' }), { signal: ctx.signal });
      const starts = ((rec && rec.ranges) || []).map((r) => r.start_us);
      if (starts.length) {
        const age = nowUs - Math.min(...starts);
        if (age < 3600e6 / 4) span = Math.max(10 * 60e6, age * 2.5);
      }
    } catch (e) {
      if (e.name === 'AbortError') return;
    }
    if (!ctx.alive()) return;
    tl.show(span);
  }
  updateDownload();
  await fetchData();
  if (initial && ctx.alive()) playFrom(initial);
  // Ranges grow while recording: refresh when now is visible.
  ctx.every(10000, () => {
    if (tl.end >= Date.now() * 1000 - 60e6) fetchData();
  });
}
