// The timeline: a canvas showing recorded ranges, gaps, motion events, the playhead, the
// selected export range and a time axis. Its visible window is mirrored in the element's
// `data-start-us` / `data-end-us` attributes and a click at x maps linearly to time over the
// element's width. Zoom: wheel, +/- keys or buttons; pan: shift+wheel, horizontal wheel,
// arrow keys; click or drag: seek; shift+drag: select a range.

import { MAX_SPAN_US, MIN_SPAN_US, panWindow, tickStep, ticks, timeToX, xToTime, zoomWindow } from './timeline-math.js';

const pad = (n) => String(n).padStart(2, '0');

function label(t, stepUs) {
  const d = new Date(t / 1000);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (stepUs >= 86400e6) return `${d.getMonth() + 1}/${d.getDate()}`;
  if (d.getHours() === 0 && d.getMinutes() === 0 && d.getSeconds() === 0) return `${d.getMonth() + 1}/${d.getDate()}`;
  if (stepUs < 60e6) return `${hm}:${pad(d.getSeconds())}`;
  return hm;
}

const COLORS = {
  bg: '#101418',
  future: '#0a0c0f',
  axis: '#8a96a3',
  grid: 'rgba(255,255,255,0.07)',
  range: '#2e8b57',
  cloud: '#3a7bbf',
  gap: 'rgba(200,60,60,0.55)',
  event: '#f0a020',
  selection: 'rgba(80,150,255,0.25)',
  selectionEdge: '#5096ff',
  playhead: '#ffffff',
  hover: 'rgba(255,255,255,0.5)',
  now: '#e04848',
};

export class Timeline {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{onSeek?: (us: number) => void, onView?: (s: number, e: number) => void,
   *          onSelect?: (a: number, b: number) => void}} handlers
   */
  constructor(canvas, handlers = {}) {
    this.canvas = canvas;
    this.h = handlers;
    this.start = 0;
    this.end = 1;
    this.ranges = [];
    // Footage only the cloud tier holds (deleted locally after upload): drawn apart, played
    // from the bucket by the server.
    this.cloudRanges = [];
    this.gaps = [];
    this.events = [];
    this.playhead = null;
    this.selection = null;
    this.hoverX = null;
    this.drag = null;
    this.pointers = new Map(); // active pointers → x, for pinch zoom
    this.pinch = null;
    this.raf = 0;
    canvas.tabIndex = 0;
    canvas.setAttribute('role', 'slider');
    canvas.setAttribute('aria-label', 'Timeline: click to play from a moment; arrows pan, + and − zoom');

    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(canvas);
    canvas.addEventListener('pointerdown', (e) => this.onDown(e));
    canvas.addEventListener('pointermove', (e) => this.onMove(e));
    canvas.addEventListener('pointerup', (e) => this.onUp(e));
    canvas.addEventListener('pointercancel', (e) => {
      this.pointers.delete(e.pointerId);
      if (!this.pointers.size) this.pinch = null;
      this.drag = null;
      this.requestDraw();
    });
    canvas.addEventListener('pointerleave', () => { this.hoverX = null; this.requestDraw(); });
    canvas.addEventListener('wheel', (e) => this.onWheel(e), { passive: false });
    canvas.addEventListener('keydown', (e) => this.onKey(e));
    this.resize();
  }

  destroy() {
    this.ro.disconnect();
    cancelAnimationFrame(this.raf);
  }

  get width() {
    return this.canvas.getBoundingClientRect().width;
  }

  /** Sets the visible window (µs); updates data attributes and tells the page. */
  setView(start, end, notify = true) {
    const now = Date.now() * 1000;
    // Never scroll further than a little past now.
    if (end > now + (end - start) * 0.5) {
      const span = end - start;
      end = now + span * 0.5;
      start = end - span;
    }
    this.start = Math.round(start);
    this.end = Math.round(end);
    this.canvas.dataset.startUs = String(this.start);
    this.canvas.dataset.endUs = String(this.end);
    this.canvas.setAttribute('aria-valuetext', `${new Date(this.start / 1000).toLocaleString()} to ${new Date(this.end / 1000).toLocaleString()}`);
    this.requestDraw();
    if (notify && this.h.onView) this.h.onView(this.start, this.end);
  }

  setData({ ranges, cloudRanges, gaps, events }) {
    if (ranges) this.ranges = ranges;
    if (cloudRanges) this.cloudRanges = cloudRanges;
    if (gaps) this.gaps = gaps;
    if (events) this.events = events;
    this.requestDraw();
  }

  setPlayhead(us) {
    this.playhead = us;
    if (us !== null) this.canvas.setAttribute('aria-valuenow', String(Math.round(us)));
    this.requestDraw();
  }

  setSelection(a, b) {
    this.selection = Number.isFinite(a) && Number.isFinite(b) && b > a ? [a, b] : null;
    this.requestDraw();
  }

  zoom(factor, anchorUs) {
    const [s, e] = zoomWindow(this.start, this.end, factor, anchorUs);
    this.setView(s, e);
  }

  pan(frac) {
    const [s, e] = panWindow(this.start, this.end, frac);
    this.setView(s, e);
  }

  /** Shows `spanUs` centred on `centerUs` (or ending near now). */
  show(spanUs, centerUs) {
    spanUs = Math.min(spanUs, MAX_SPAN_US);
    const c = centerUs === undefined ? Date.now() * 1000 - spanUs * 0.45 : centerUs;
    this.setView(c - spanUs / 2, c + spanUs / 2);
  }

  xOf(e) {
    const r = this.canvas.getBoundingClientRect();
    return Math.min(r.width, Math.max(0, e.clientX - r.left));
  }

  timeAtX(x) {
    return xToTime(x, this.width, this.start, this.end);
  }

  onDown(e) {
    if (e.button !== 0) return;
    this.canvas.setPointerCapture(e.pointerId);
    const x = this.xOf(e);
    this.pointers.set(e.pointerId, x);
    if (this.pointers.size === 2) {
      // Two fingers: pinch to zoom (and pan with the midpoint); no seek on release.
      const [a, b] = [...this.pointers.values()];
      this.pinch = { dist: Math.max(10, Math.abs(a - b)), mid: this.timeAtX((a + b) / 2) };
      this.drag = null;
      return;
    }
    this.drag = { x0: x, x, select: e.shiftKey, moved: false };
    this.requestDraw();
  }

  onMove(e) {
    const x = this.xOf(e);
    if (this.pointers.has(e.pointerId)) this.pointers.set(e.pointerId, x);
    if (this.pinch && this.pointers.size === 2) {
      const [a, b] = [...this.pointers.values()];
      const dist = Math.max(10, Math.abs(a - b));
      const factor = this.pinch.dist / dist;
      const span = Math.min(MAX_SPAN_US, Math.max(MIN_SPAN_US, (this.end - this.start) * factor));
      // Keep the time first under the fingers' midpoint under it.
      const frac = (a + b) / 2 / Math.max(1, this.width);
      this.pinch.dist = dist;
      this.setView(this.pinch.mid - frac * span, this.pinch.mid - frac * span + span);
      return;
    }
    this.hoverX = x;
    if (this.drag) {
      this.drag.x = x;
      if (Math.abs(x - this.drag.x0) > 3) this.drag.moved = true;
    }
    this.requestDraw();
  }

  onUp(e) {
    this.pointers.delete(e.pointerId);
    if (this.pinch) {
      if (this.pointers.size === 0) this.pinch = null;
      return;
    }
    const d = this.drag;
    this.drag = null;
    if (!d) return;
    const x = this.xOf(e);
    if (d.select && d.moved) {
      const a = this.timeAtX(Math.min(d.x0, x));
      const b = this.timeAtX(Math.max(d.x0, x));
      this.setSelection(a, b);
      if (this.h.onSelect) this.h.onSelect(a, b);
    } else if (this.h.onSeek) {
      this.h.onSeek(this.timeAtX(x));
    }
    this.requestDraw();
  }

  onWheel(e) {
    e.preventDefault();
    const dx = e.shiftKey ? e.deltaY : e.deltaX;
    if (Math.abs(dx) > Math.abs(e.shiftKey ? 0 : e.deltaY)) {
      this.pan(dx / Math.max(200, this.width));
      return;
    }
    const anchor = this.timeAtX(this.xOf(e));
    this.zoom(Math.pow(1.0015, e.deltaY * (e.deltaMode === 1 ? 30 : 1)), anchor);
  }

  onKey(e) {
    const keys = {
      ArrowLeft: () => this.pan(-0.1),
      ArrowRight: () => this.pan(0.1),
      '+': () => this.zoom(0.5),
      '=': () => this.zoom(0.5),
      '-': () => this.zoom(2),
      Home: () => this.show(this.end - this.start),
      Enter: () => this.h.onSeek && this.h.onSeek(this.playhead ?? (this.start + this.end) / 2),
    };
    const f = keys[e.key];
    if (f) {
      e.preventDefault();
      f();
    }
  }

  resize() {
    const r = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.max(1, Math.round(r.width * dpr));
    this.canvas.height = Math.max(1, Math.round(r.height * dpr));
    this.requestDraw();
  }

  requestDraw() {
    if (this.raf) return;
    this.raf = requestAnimationFrame(() => {
      this.raf = 0;
      this.draw();
    });
  }

  draw() {
    const c = this.canvas;
    const ctx = c.getContext('2d');
    if (!ctx) return;
    const dpr = window.devicePixelRatio || 1;
    const W = c.width / dpr;
    const H = c.height / dpr;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const X = (t) => timeToX(t, W, this.start, this.end);
    const span = this.end - this.start;
    const axisH = 18;
    const trackY = axisH + 4;
    const trackH = Math.max(10, H - axisH - 22);
    const evY = trackY + trackH + 3;

    ctx.fillStyle = COLORS.bg;
    ctx.fillRect(0, 0, W, H);
    const nowX = X(Date.now() * 1000);
    if (nowX < W) {
      ctx.fillStyle = COLORS.future;
      ctx.fillRect(Math.max(0, nowX), 0, W - Math.max(0, nowX), H);
    }

    // Axis and grid.
    const step = tickStep(span, W);
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'top';
    ctx.textAlign = 'center';
    for (const t of ticks(this.start, this.end, step, new Date(this.start / 1000).getTimezoneOffset())) {
      const x = Math.round(X(t)) + 0.5;
      ctx.fillStyle = COLORS.grid;
      ctx.fillRect(x, axisH, 1, H - axisH);
      ctx.fillStyle = COLORS.axis;
      ctx.fillText(label(t, step), x, 3);
    }

    // Recorded ranges, gaps.
    ctx.fillStyle = COLORS.range;
    for (const r of this.ranges) {
      const x0 = Math.max(0, X(r.start_us));
      const x1 = Math.min(W, X(r.end_us));
      if (x1 > x0 - 1) ctx.fillRect(x0, trackY, Math.max(1, x1 - x0), trackH);
    }
    ctx.fillStyle = COLORS.cloud;
    for (const r of this.cloudRanges) {
      const x0 = Math.max(0, X(r.start_us));
      const x1 = Math.min(W, X(r.end_us));
      if (x1 > x0 - 1) ctx.fillRect(x0, trackY, Math.max(1, x1 - x0), trackH);
    }
    ctx.fillStyle = COLORS.gap;
    for (const g of this.gaps) {
      const x0 = Math.max(0, X(g.start_us));
      const x1 = Math.min(W, X(g.end_us));
      if (x1 > x0 - 1) ctx.fillRect(x0, trackY + trackH * 0.35, Math.max(1, x1 - x0), trackH * 0.3);
    }

    // Motion events.
    ctx.fillStyle = COLORS.event;
    for (const ev of this.events) {
      const x0 = X(ev.start_us);
      const x1 = X(ev.end_us ?? Date.now() * 1000);
      if (x1 < 0 || x0 > W) continue;
      ctx.fillRect(x0, evY, Math.max(2, x1 - x0), 8);
    }

    // Selection.
    let sel = this.selection;
    if (this.drag && this.drag.select && this.drag.moved) {
      sel = [this.timeAtX(Math.min(this.drag.x0, this.drag.x)), this.timeAtX(Math.max(this.drag.x0, this.drag.x))];
    }
    if (sel) {
      const x0 = X(sel[0]);
      const x1 = X(sel[1]);
      ctx.fillStyle = COLORS.selection;
      ctx.fillRect(x0, axisH, x1 - x0, H - axisH);
      ctx.fillStyle = COLORS.selectionEdge;
      ctx.fillRect(x0, axisH, 1, H - axisH);
      ctx.fillRect(x1 - 1, axisH, 1, H - axisH);
    }

    // Now.
    if (nowX >= 0 && nowX <= W) {
      ctx.fillStyle = COLORS.now;
      ctx.fillRect(Math.round(nowX), axisH, 1, H - axisH);
    }

    // Playhead.
    if (this.playhead !== null) {
      const x = Math.round(X(this.playhead));
      if (x >= 0 && x <= W) {
        ctx.fillStyle = COLORS.playhead;
        ctx.fillRect(x - 1, axisH, 2, H - axisH);
        ctx.beginPath();
        ctx.moveTo(x - 5, axisH);
        ctx.lineTo(x + 5, axisH);
        ctx.lineTo(x, axisH + 6);
        ctx.fill();
      }
    }

    // Hover / scrub position with its time.
    const hx = this.drag ? this.drag.x : this.hoverX;
    if (hx !== null) {
      ctx.fillStyle = COLORS.hover;
      ctx.fillRect(Math.round(hx), axisH, 1, H - axisH);
      const t = this.timeAtX(hx);
      const d = new Date(t / 1000);
      const txt = `${d.toLocaleDateString()} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
      const w = ctx.measureText(txt).width + 8;
      const lx = Math.min(W - w, Math.max(0, hx - w / 2));
      ctx.fillStyle = 'rgba(0,0,0,0.8)';
      ctx.fillRect(lx, 0, w, 16);
      ctx.fillStyle = '#fff';
      ctx.textAlign = 'left';
      ctx.fillText(txt, lx + 4, 2);
    }
  }
}
