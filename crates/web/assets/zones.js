// Zones and masks editor: polygons drawn on a snapshot of the camera with a canvas, in
// normalized coordinates (0..1, origin top left), as stored in `motion.zones`.
// Select a zone in the list, then click on the picture to add points; drag a point to move
// it; "Undo point" (or Backspace) removes the last one.

import { h, replace } from './dom.js';

const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
const HANDLE_PX = 10;

/** Rounds a normalized coordinate to 4 decimals, clamped to 0..1. */
export function norm(v) {
  return Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000;
}

/** Problems of a zone list (empty when valid). */
export function validateZones(zones) {
  const errors = [];
  const seen = new Set();
  for (const z of zones) {
    if (!NAME_RE.test(z.name)) errors.push(`"${z.name}": names are 1-64 of A-Z a-z 0-9 _ -`);
    if (seen.has(z.name)) errors.push(`"${z.name}" is used twice`);
    seen.add(z.name);
    if (z.points.length < 3) errors.push(`"${z.name}" needs at least 3 points`);
  }
  return errors;
}

export class ZoneEditor {
  /**
   * @param {string|null} snapshot URL of a snapshot (null: a blank 16:9 picture)
   * @param {Array} zones motion.zones of the camera (copied)
   */
  constructor(snapshot, zones) {
    this.zones = (zones || []).map((z) => ({ ...z, points: z.points.map((p) => [p[0], p[1]]) }));
    this.sel = this.zones.length ? 0 : -1;
    this.dragPoint = -1;

    this.img = h('img', { alt: 'Camera snapshot', draggable: 'false' });
    this.canvas = h('canvas', { tabindex: 0, 'aria-label': 'Zone drawing area: click to add a point to the selected zone' });
    this.wrap = h('div', { class: 'zone-canvas-wrap' }, this.img, this.canvas);
    this.list = h('ul', { class: 'zone-list' });
    this.detail = h('div');
    this.msg = h('p', { class: 'hint', role: 'status' });
    const btn = (text, fn, cls = 'btn btn-small') => {
      const b = h('button', { type: 'button', class: cls }, text);
      b.addEventListener('click', fn);
      return b;
    };
    this.el = h('div', { class: 'zones-editor' },
      h('div', null, this.wrap, this.msg),
      h('div', null,
        h('div', { class: 'form-actions' },
          btn('Add zone', () => this.add('zone')), btn('Add mask', () => this.add('mask')),
          btn('Undo point', () => this.undo())),
        h('p', { class: 'hint' }, 'Zones report motion under their name; masks are ignored. No zone: the whole picture.'),
        this.list, this.detail));

    if (snapshot) {
      this.img.addEventListener('load', () => {
        if (this.img.naturalWidth && this.img.naturalHeight) {
          this.wrap.style.aspectRatio = `${this.img.naturalWidth} / ${this.img.naturalHeight}`;
        }
        this.draw();
      });
      this.img.addEventListener('error', () => {
        this.img.hidden = true;
        this.msg.textContent = 'No snapshot available (camera offline?): drawing on a blank picture.';
      });
      this.img.src = snapshot;
    } else {
      this.img.hidden = true;
      this.msg.textContent = 'Save the camera first to draw on a snapshot; drawing on a blank picture.';
    }

    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(this.wrap);
    this.canvas.addEventListener('pointerdown', (e) => this.onDown(e));
    this.canvas.addEventListener('pointermove', (e) => this.onMove(e));
    this.canvas.addEventListener('pointerup', () => { this.dragPoint = -1; });
    this.canvas.addEventListener('contextmenu', (e) => { e.preventDefault(); this.undo(); });
    this.canvas.addEventListener('keydown', (e) => {
      if (e.key === 'Backspace' || e.key === 'Delete') {
        e.preventDefault();
        this.undo();
      }
    });
    this.renderList();
  }

  destroy() {
    this.ro.disconnect();
  }

  /** The zones as motion.zones (deep copy). */
  value() {
    return this.zones.map((z) => {
      const out = { name: z.name, kind: z.kind || 'zone', points: z.points.map((p) => [norm(p[0]), norm(p[1])]) };
      if (Number.isFinite(z.sensitivity)) out.sensitivity = z.sensitivity;
      if (Number.isFinite(z.min_area_pct)) out.min_area_pct = z.min_area_pct;
      return out;
    });
  }

  add(kind) {
    let i = 1;
    const names = new Set(this.zones.map((z) => z.name));
    while (names.has(`${kind}${i}`)) i++;
    this.zones.push({ name: `${kind}${i}`, kind, points: [] });
    this.sel = this.zones.length - 1;
    this.msg.textContent = 'Click on the picture to place the points of the polygon.';
    this.renderList();
    this.draw();
    this.canvas.focus();
  }

  undo() {
    const z = this.zones[this.sel];
    if (z && z.points.length) {
      z.points.pop();
      this.draw();
      this.renderList();
    }
  }

  renderList() {
    replace(this.list, this.zones.map((z, i) => {
      const nameEl = h('span', { class: 'zname', role: 'button', tabindex: 0 }, z.name);
      const select = () => {
        this.sel = i;
        this.renderList();
        this.draw();
      };
      nameEl.addEventListener('click', select);
      nameEl.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          select();
        }
      });
      const del = h('button', { type: 'button', class: 'btn btn-small btn-danger', 'aria-label': `Delete ${z.name}` }, '✕');
      del.addEventListener('click', () => {
        this.zones.splice(i, 1);
        this.sel = Math.min(this.sel, this.zones.length - 1);
        this.renderList();
        this.draw();
      });
      return h('li', { class: i === this.sel ? 'selected' : '' },
        h('span', { class: `swatch ${z.kind === 'mask' ? 'mask' : 'zone'}` }), nameEl,
        h('span', { class: 'muted' }, `${z.points.length} pts`), del);
    }));
    this.renderDetail();
  }

  renderDetail() {
    const z = this.zones[this.sel];
    if (!z) {
      replace(this.detail);
      return;
    }
    const name = h('input', { value: z.name, maxlength: 64, pattern: '[A-Za-z0-9_-]{1,64}', 'aria-label': 'Zone name' });
    name.addEventListener('change', () => {
      z.name = name.value.trim();
      this.renderList();
      this.draw();
    });
    const kind = h('select', { 'aria-label': 'Kind' }, h('option', { value: 'zone' }, 'Zone (detect)'), h('option', { value: 'mask' }, 'Mask (ignore)'));
    kind.value = z.kind || 'zone';
    kind.addEventListener('change', () => {
      z.kind = kind.value;
      this.renderList();
      this.draw();
    });
    const sens = h('input', { type: 'number', min: 1, max: 100, step: 1, value: z.sensitivity ?? '', placeholder: 'camera default' });
    sens.addEventListener('change', () => {
      const v = Number.parseInt(sens.value, 10);
      z.sensitivity = Number.isFinite(v) ? Math.min(100, Math.max(1, v)) : undefined;
    });
    const area = h('input', { type: 'number', min: 0, max: 100, step: 0.1, value: z.min_area_pct ?? '', placeholder: 'camera default' });
    area.addEventListener('change', () => {
      const v = Number.parseFloat(area.value);
      z.min_area_pct = Number.isFinite(v) ? v : undefined;
    });
    const lab = (t, el) => h('label', { class: 'field' }, h('span', { class: 'field-label' }, t), el);
    replace(this.detail, h('h3', null, 'Selected'), lab('Name', name), lab('Kind', kind),
      z.kind === 'mask' ? null : [lab('Sensitivity (1-100)', sens), lab('Minimum area % of the zone', area)]);
  }

  resize() {
    const r = this.wrap.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.max(1, Math.round(r.width * dpr));
    this.canvas.height = Math.max(1, Math.round(r.height * dpr));
    this.draw();
  }

  pos(e) {
    const r = this.canvas.getBoundingClientRect();
    return [(e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height, r.width, r.height];
  }

  onDown(e) {
    const z = this.zones[this.sel];
    if (!z) {
      this.msg.textContent = 'Add a zone or a mask first.';
      return;
    }
    const [x, y, w, hh] = this.pos(e);
    // Grab an existing point of the selected polygon?
    for (let i = 0; i < z.points.length; i++) {
      const [px, py] = z.points[i];
      if (Math.hypot((px - x) * w, (py - y) * hh) <= HANDLE_PX) {
        this.dragPoint = i;
        this.canvas.setPointerCapture(e.pointerId);
        return;
      }
    }
    z.points.push([norm(x), norm(y)]);
    this.dragPoint = z.points.length - 1;
    this.canvas.setPointerCapture(e.pointerId);
    this.renderList();
    this.draw();
  }

  onMove(e) {
    const z = this.zones[this.sel];
    if (!z || this.dragPoint < 0 || !z.points[this.dragPoint]) return;
    const [x, y] = this.pos(e);
    z.points[this.dragPoint] = [norm(x), norm(y)];
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const ctx = c.getContext('2d');
    if (!ctx) return;
    const dpr = window.devicePixelRatio || 1;
    const W = c.width / dpr;
    const H = c.height / dpr;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    if (this.img.hidden) {
      ctx.fillStyle = '#1f2630';
      ctx.fillRect(0, 0, W, H);
    }
    this.zones.forEach((z, i) => {
      const mask = z.kind === 'mask';
      const selected = i === this.sel;
      if (!z.points.length) return;
      ctx.beginPath();
      z.points.forEach(([x, y], k) => (k ? ctx.lineTo(x * W, y * H) : ctx.moveTo(x * W, y * H)));
      if (z.points.length >= 3) ctx.closePath();
      ctx.fillStyle = mask ? 'rgba(20,20,20,0.55)' : 'rgba(78,161,255,0.22)';
      if (z.points.length >= 3) ctx.fill();
      ctx.lineWidth = selected ? 2.5 : 1.5;
      ctx.strokeStyle = mask ? '#bbbbbb' : '#4ea1ff';
      ctx.setLineDash(mask ? [6, 4] : []);
      ctx.stroke();
      ctx.setLineDash([]);
      if (selected) {
        for (const [x, y] of z.points) {
          ctx.fillStyle = '#fff';
          ctx.fillRect(x * W - 4, y * H - 4, 8, 8);
          ctx.strokeStyle = '#000';
          ctx.lineWidth = 1;
          ctx.strokeRect(x * W - 4, y * H - 4, 8, 8);
        }
      }
      const cx = z.points.reduce((a, p) => a + p[0], 0) / z.points.length;
      const cy = z.points.reduce((a, p) => a + p[1], 0) / z.points.length;
      ctx.font = '600 13px system-ui, sans-serif';
      ctx.textAlign = 'center';
      ctx.fillStyle = '#000';
      ctx.fillText(z.name, cx * W + 1, cy * H + 1);
      ctx.fillStyle = '#fff';
      ctx.fillText(z.name, cx * W, cy * H);
    });
  }
}
