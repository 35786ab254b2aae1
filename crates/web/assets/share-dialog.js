// The "Share" dialog: makes an expiring, revocable link to one recorded clip (timeline page)
// or to a camera's live view (camera page) with POST /api/shares, then shows the link to
// copy. The pure helpers at the top (expiry choices per kind, "2 of 5 views", what a share
// shows) are also used by pages/shares.js and tested by assets-tests/share.test.mjs.

import * as api from './api.js';
import { field, h, replace } from './dom.js';
import { fmtTime } from './format.js';

/** Expiry choices of the dialog: [seconds, label]. */
export const EXPIRY_CHOICES = [
  [3600, '1 hour'],
  [6 * 3600, '6 hours'],
  [86400, '24 hours'],
  [3 * 86400, '3 days'],
  [7 * 86400, '7 days'],
  [30 * 86400, '30 days'],
];

/** Limits used when GET /api/shares gives none (the server's defaults). */
export const DEFAULT_LIMITS = {
  min_expires_s: 3600,
  max_expires_s: 2592000,
  max_live_expires_s: 86400,
  max_offsite_expires_s: 604800,
  default_expires_s: 86400,
  max_offsite_span_s: 1800,
};

/** The longest expiry (s) a share of `kind` ('clip' | 'live' | 'offsite') may have. */
export function maxExpiry(kind, limits = DEFAULT_LIMITS) {
  const l = { ...DEFAULT_LIMITS, ...(limits || {}) };
  if (kind === 'live') return Math.min(l.max_live_expires_s, l.max_expires_s);
  if (kind === 'offsite') return Math.min(l.max_offsite_expires_s, l.max_expires_s);
  return l.max_expires_s;
}

/**
 * The expiry choices allowed for `kind` and the one to preselect: `prefer` (the current
 * choice) when allowed, else the server's default when allowed, else the longest allowed.
 * Returns {options: [[s, label]], selected: s | null}.
 */
export function expiryOptions(kind, limits = DEFAULT_LIMITS, prefer = null) {
  const l = { ...DEFAULT_LIMITS, ...(limits || {}) };
  const max = maxExpiry(kind, l);
  const options = EXPIRY_CHOICES.filter(([s]) => s >= l.min_expires_s && s <= max);
  const has = (s) => options.some(([o]) => o === s);
  let selected = null;
  if (prefer !== null && has(prefer)) selected = prefer;
  else if (has(l.default_expires_s)) selected = l.default_expires_s;
  else if (options.length) {
    // The longest choice not above the default (or the shortest one).
    const below = options.filter(([s]) => s <= l.default_expires_s);
    selected = (below.length ? below[below.length - 1] : options[0])[0];
  }
  return { options, selected };
}

/**
 * Why a clip cannot be stored offsite (null when it can): the server caps an offsite clip's
 * length (`limits.max_offsite_span_s`, it is encrypted and uploaded whole).
 */
export function offsiteBlocker(target, limits = DEFAULT_LIMITS) {
  const l = { ...DEFAULT_LIMITS, ...(limits || {}) };
  const spanS = (target.end_us - target.start_us) / 1e6;
  if (Number.isFinite(l.max_offsite_span_s) && spanS > l.max_offsite_span_s) {
    return `Offsite clips last at most ${Math.round(l.max_offsite_span_s / 60)} minutes; select a shorter range.`;
  }
  return null;
}

/** "2 views", "2 of 5 views". */
export function viewsText(views, maxViews) {
  const n = Number(views) || 0;
  if (maxViews === null || maxViews === undefined) return `${n} ${n === 1 ? 'view' : 'views'}`;
  return `${n} of ${maxViews} ${maxViews === 1 ? 'view' : 'views'}`;
}

/** The view limit typed in the dialog: a whole number ≥ 1, null when empty, NaN when invalid. */
export function parseMaxViews(text) {
  const t = String(text ?? '').trim();
  if (t === '') return null;
  if (!/^\d+$/.test(t)) return NaN;
  const n = Number(t);
  return n >= 1 && Number.isSafeInteger(n) ? n : NaN;
}

/** What a share shows, for the table: "clip 2026-11-25 23:41:39 – 23:42:39", "live". */
export function rangeText(startUs, endUs, fmt = fmtTime) {
  if (startUs === null || startUs === undefined) return 'live';
  const a = fmt(startUs);
  const b = fmt(endUs);
  // The same day: the end without its date.
  const day = (s) => s.slice(0, 10);
  return day(a) === day(b) ? `${a} – ${b.slice(11)}` : `${a} – ${b}`;
}

/** Labels of the kinds and states of a share. */
export const KIND_LABELS = { clip: 'Clip', live: 'Live view', offsite: 'Clip (offsite)' };
export const STATE_LABELS = {
  active: 'active',
  expired: 'expired',
  revoked: 'revoked',
  used_up: 'view limit reached',
  footage_deleted: 'footage deleted',
};

/**
 * The body of POST /api/shares from the dialog's values. `target` is {kind: 'clip' | 'live',
 * camera, stream, start_us?, end_us?}; `form` is {expires_s, password, max_views,
 * allow_download, label, offsite}. Clip times are whole µs; a live share sends none.
 */
export function shareRequest(target, form) {
  const clip = target.kind !== 'live';
  const body = {
    kind: clip ? (form.offsite ? 'offsite' : 'clip') : 'live',
    camera: target.camera,
    stream: target.stream || 'main',
  };
  if (clip) {
    body.start_us = Math.round(target.start_us);
    body.end_us = Math.round(target.end_us);
  }
  body.expires_s = form.expires_s;
  body.password = form.password ? form.password : null;
  body.max_views = form.max_views ?? null;
  body.allow_download = clip ? !!form.allow_download : false;
  body.label = (form.label || '').trim();
  return body;
}

// ---------------------------------------------------------------------------- the dialog

let limitsCache = null;

/** GET /api/shares once per page load for the limits and whether offsite storage exists. */
async function loadOptions() {
  if (limitsCache) return limitsCache;
  const r = await api.get('/api/shares');
  limitsCache = { limits: { ...DEFAULT_LIMITS, ...((r && r.limits) || {}) }, offsite: !!(r && r.offsite_available) };
  return limitsCache;
}

/**
 * Opens the dialog for `target` ({kind: 'clip' | 'live', camera, stream, start_us, end_us});
 * focus returns to `opener` when it closes. Resolves when the dialog is shown.
 */
export async function openShareDialog(target, opener = document.activeElement) {
  const clip = target.kind !== 'live';
  const expiry = h('select', { id: 'share-expiry' });
  const pass = h('input', { id: 'share-pass', type: 'password', autocomplete: 'new-password', maxlength: 256 });
  const views = h('input', { id: 'share-views', type: 'number', min: 1, step: 1, inputmode: 'numeric' });
  const download = h('input', { id: 'share-download-allowed', type: 'checkbox', checked: true });
  const label = h('input', { id: 'share-label', type: 'text', maxlength: 200, autocomplete: 'off' });
  const offsite = h('input', { id: 'share-offsite', type: 'checkbox' });
  const offsiteHint = h('small', { class: 'hint', id: 'share-offsite-hint' });
  const offsiteField = h('div', { class: 'field', hidden: true },
    h('label', { class: 'field check' }, offsite,
      h('span', { class: 'field-label' }, 'Store offsite (works when this recorder is off; max 7 days)')),
    offsiteHint);
  offsite.setAttribute('aria-describedby', 'share-offsite-hint');
  const create = h('button', { id: 'share-create', type: 'submit' }, 'Create link');
  const status = h('p', { class: 'muted share-status', role: 'status', 'aria-live': 'polite' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const what = clip
    ? `${target.camera} · ${rangeText(target.start_us, target.end_us)} · ${target.stream || 'main'} stream`
    : `${target.camera} · live view (${target.stream || 'main'} stream)`;
  const titleId = 'share-dialog-title';
  const form = h('form', { class: 'share-form', novalidate: true },
    h('p', { class: 'muted' }, what),
    field('Link expires after', expiry),
    field('Password (optional)', pass, 'Send it separately from the link.'),
    field('View limit (optional)', views, 'How many times the link may be opened.'),
    clip ? h('label', { class: 'field check' }, download, h('span', { class: 'field-label' }, 'Allow download')) : null,
    field('Label (optional)', label, 'For your list of shares, e.g. "Police, case 1234". Shown to the viewer.'),
    offsiteField,
    error,
    h('div', { class: 'form-actions' }, create, status));
  const result = h('div', { class: 'share-result', hidden: true });
  const dlg = h('dialog', { id: 'share-dialog', class: 'share-dialog', 'aria-labelledby': titleId },
    h('div', { class: 'dlg-head' }, h('h2', { id: titleId }, clip ? 'Share this clip' : 'Share the live view'),
      h('button', { type: 'button', class: 'btn btn-small btn-ghost', 'aria-label': 'Close' }, '✕')),
    h('div', { class: 'dlg-body' }, form, result));
  dlg.querySelector('.dlg-head button').addEventListener('click', () => dlg.close());

  let busy = false;
  let timer = 0;
  dlg.addEventListener('cancel', (e) => {
    // Escape closes, except while an offsite upload runs (its result would be lost).
    if (busy) e.preventDefault();
  });
  // Leaving the page (a link, the back button) closes the dialog; a share being made is
  // still made and listed on the Shares page.
  const onLeave = () => {
    busy = false;
    if (dlg.open) dlg.close();
  };
  window.addEventListener('hashchange', onLeave);
  dlg.addEventListener('close', () => {
    window.removeEventListener('hashchange', onLeave);
    clearInterval(timer);
    dlg.remove();
    if (opener && typeof opener.focus === 'function' && opener.isConnected) opener.focus();
  });
  document.body.appendChild(dlg);
  dlg.showModal();

  let opts;
  try {
    opts = await loadOptions();
  } catch (e) {
    if (e instanceof api.ApiError && e.status === 401) {
      dlg.close();
      return;
    }
    opts = { limits: { ...DEFAULT_LIMITS }, offsite: false };
    error.textContent = `Could not load the share settings: ${e.message}`;
  }
  offsiteField.hidden = !(clip && opts.offsite);
  if (clip && opts.offsite) {
    const why = offsiteBlocker(target, opts.limits);
    offsite.disabled = !!why;
    offsiteHint.textContent = why || 'The clip is encrypted and uploaded to your bucket; this can take a while.';
  }

  const kindNow = () => (clip ? (offsite.checked ? 'offsite' : 'clip') : 'live');
  const fillExpiry = () => {
    const prev = expiry.value ? Number(expiry.value) : null;
    const { options, selected } = expiryOptions(kindNow(), opts.limits, prev);
    replace(expiry, options.map(([s, text]) => h('option', { value: String(s), selected: s === selected }, text)));
    if (selected !== null) expiry.value = String(selected);
  };
  fillExpiry();
  offsite.addEventListener('change', fillExpiry);
  expiry.focus();

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (busy) return;
    error.textContent = '';
    const maxViews = parseMaxViews(views.value);
    if (Number.isNaN(maxViews) || (views.validity && views.validity.badInput)) {
      error.textContent = 'The view limit must be a whole number of at least 1.';
      views.focus();
      return;
    }
    const expiresS = Number(expiry.value);
    if (!Number.isFinite(expiresS) || expiresS <= 0) {
      error.textContent = 'Choose when the link expires.';
      expiry.focus();
      return;
    }
    const body = shareRequest(target, {
      expires_s: expiresS,
      password: pass.value,
      max_views: maxViews,
      allow_download: download.checked,
      label: label.value,
      offsite: clip && opts.offsite && offsite.checked,
    });
    busy = true;
    create.disabled = true;
    const started = Date.now();
    const progress = () => {
      const s = Math.round((Date.now() - started) / 1000);
      status.textContent = body.kind === 'offsite'
        ? `Encrypting and uploading the clip… ${s} s`
        : 'Creating the link…';
    };
    progress();
    if (body.kind === 'offsite') timer = setInterval(progress, 1000);
    try {
      const r = await api.post('/api/shares', body);
      showResult(r);
    } catch (err) {
      if (!(err instanceof api.ApiError && err.status === 401)) {
        error.textContent = err.status === 429 && err.retryAfter
          ? `${err.message} (try again in ${err.retryAfter} s)`
          : `Could not create the link: ${err.message}`;
      }
      status.textContent = '';
      create.disabled = false;
    } finally {
      busy = false;
      clearInterval(timer);
    }
  });

  function showResult(r) {
    const share = (r && r.share) || {};
    const url = h('input', { id: 'share-url', type: 'text', readonly: true, value: r && r.url ? r.url : '', spellcheck: 'false' });
    const copied = h('span', { class: 'muted', role: 'status', 'aria-live': 'polite' });
    const copy = h('button', { id: 'share-copy', type: 'button', class: 'btn btn-primary' }, 'Copy');
    copy.addEventListener('click', async () => {
      url.focus();
      url.select();
      try {
        if (!navigator.clipboard || !window.isSecureContext) throw new Error('no clipboard');
        await navigator.clipboard.writeText(url.value);
        copied.textContent = 'Copied.';
      } catch {
        // The text stays selected: Ctrl+C / ⌘C (or the phone's menu) copies it.
        copied.textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
      }
    });
    url.addEventListener('focus', () => url.select());
    const notes = [`Valid until ${fmtTime(share.expires_us, false)}.`];
    if (share.password) notes.push('The viewer needs the password.');
    if (share.max_views) notes.push(`It can be opened ${share.max_views === 1 ? 'once' : `${share.max_views} times`}.`);
    if (share.kind === 'offsite') notes.push('Stored offsite: it works when this recorder is off.');
    notes.push('Revoke it any time on the Shares page.');
    replace(result,
      h('p', { class: 'ok' }, 'Link created. Anyone with it can watch until it expires.'),
      field('Link', url),
      h('div', { class: 'form-actions' }, copy, copied),
      h('p', { class: 'muted', id: 'share-expiry-note' }, notes.join(' ')),
      h('div', { class: 'form-actions' },
        h('a', { href: '#/shares', class: 'btn' }, 'All shares'),
        h('button', { type: 'button', class: 'btn', id: 'share-done' }, 'Done')));
    result.querySelector('#share-done').addEventListener('click', () => dlg.close());
    result.querySelector('a[href="#/shares"]').addEventListener('click', () => dlg.close());
    form.hidden = true;
    result.hidden = false;
    url.focus();
  }
}
