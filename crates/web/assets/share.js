// The share viewer (/s/#TOKEN, share.html): opens a share link without an account and shows
// only what it shares: one recorded clip (<video src=/api/share/ID/clip.mp4>) or a camera's
// live view (the app's live protocol on /api/share/ID/live). The token stays in the URL's
// fragment, which browsers never send; POST /api/share/open exchanges it (and the password,
// when the share has one) for a cookie scoped to /api/share/ID/. That cookie never reaches
// /api/share/open, so a reload first asks /api/share/ID/info (the id is remembered for this
// tab, keyed by a hash of the token): no second view counted, no password typed again.
// The pure helpers are exported for assets-tests/share.test.mjs; the page starts itself only
// in a browser (the live player is imported when a live share opens: it needs the DOM).

import { h, replace } from './dom.js';
import { fmtTime } from './format.js';

/** The token of a share link's fragment ("#TOKEN", "#/TOKEN" or "#token=TOKEN"), or null. */
export function parseShareToken(hash) {
  let t = String(hash || '').replace(/^#/, '').replace(/^\//, '');
  if (t.startsWith('token=')) t = t.slice(6);
  try {
    t = decodeURIComponent(t);
  } catch {
    return null;
  }
  t = t.trim();
  // Tokens are base64(url) or hex; anything else (spaces, markup) is a mangled link.
  return /^[A-Za-z0-9._~+/=-]{8,512}$/.test(t) ? t : null;
}

/** The heading shown for an error reason of the share API. */
export const REASON_HEADINGS = {
  invalid: 'This link does not work',
  password_required: 'This video is protected by a password',
  wrong_password: 'Wrong password',
  expired: 'This link has expired',
  revoked: 'This link was revoked by its owner',
  used_up: 'This link has been used up',
  footage_deleted: 'This recording no longer exists',
  rate_limited: 'Too many attempts',
  network: 'The recorder cannot be reached',
  live_ended: 'This live view has ended',
};

/** The heading for `reason` (a generic one for an unknown reason). */
export function reasonHeading(reason) {
  return Object.prototype.hasOwnProperty.call(REASON_HEADINGS, reason) ? REASON_HEADINGS[reason] : 'This video cannot be shown';
}

/** Reasons after which the link will never work again (no retry, no password form). */
export function isFinalReason(reason) {
  return ['invalid', 'expired', 'revoked', 'used_up', 'footage_deleted'].includes(reason);
}

/**
 * The result of the open/info call as {ok, data} or {ok: false, reason, message, retryAfter}:
 * `status` is the HTTP status, `data` the parsed JSON body (or null).
 */
export function openOutcome(status, data, retryAfter = null) {
  if (status >= 200 && status < 300 && data && typeof data.id === 'string') return { ok: true, data };
  const message = data && typeof data.error === 'string' ? data.error : `The recorder answered ${status}.`;
  let reason = data && typeof data.reason === 'string' ? data.reason : null;
  if (status === 429) reason = 'rate_limited';
  if (!reason) reason = status === 404 ? 'invalid' : status === 410 ? 'expired' : 'error';
  return { ok: false, reason, message, retryAfter: Number.isFinite(retryAfter) ? retryAfter : null };
}

/** "Recorded 2026-11-25 23:41:39 – 23:42:39" for a clip, "Live view" for live. */
export function shareRangeText(info, fmt = fmtTime) {
  if (info.kind === 'live' || info.start_us === null || info.start_us === undefined) return 'Live view';
  const a = fmt(info.start_us);
  const b = fmt(info.end_us);
  return `Recorded ${a} – ${a.slice(0, 10) === b.slice(0, 10) ? b.slice(11) : b}`;
}

/** The text shown when the server ended a shared live view (close code 4410, its reason). */
export function liveEndedText(closeReason) {
  if (/revok/i.test(closeReason || '')) return 'This live view was ended by its owner.';
  if (/expir/i.test(closeReason || '')) return 'This live view has expired.';
  return 'This live view was ended by its owner or has expired.';
}

/** The WebSocket path and clip URLs of an opened share. */
export function shareUrls(id) {
  const base = `/api/share/${encodeURIComponent(id)}`;
  return { clip: `${base}/clip.mp4`, download: `${base}/clip.mp4?download=1`, live: `${base}/live`, info: `${base}/info` };
}

/** The sessionStorage key remembering which share id a token opened (a hash, not the token). */
export async function sessionKey(token, subtle = globalThis.crypto && globalThis.crypto.subtle) {
  if (!subtle) return null;
  const d = new Uint8Array(await subtle.digest('SHA-256', new TextEncoder().encode(token)));
  return `vigil.share.${[...d.slice(0, 16)].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

const store = {
  get(k) {
    try {
      return k ? sessionStorage.getItem(k) : null;
    } catch {
      return null;
    }
  },
  set(k, v) {
    try {
      if (k) {
        if (v === null) sessionStorage.removeItem(k);
        else sessionStorage.setItem(k, v);
      }
    } catch {
      // private mode without storage: reloads open the link again
    }
  },
};

// ---------------------------------------------------------------------------- the page

/** POSTs /api/share/open (or GETs info): the outcome as openOutcome. */
async function call(method, path, body) {
  const init = {
    method,
    headers: { Accept: 'application/json' },
    credentials: 'same-origin',
    cache: 'no-store',
    // As api.js: keeps the real Origin on the POST under the page's no-referrer policy; the
    // Referer of a same-origin request is /s/ without the fragment (fragments are never sent).
    referrerPolicy: 'same-origin',
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    return { ok: false, reason: 'network', message: 'Check the connection and reload the page.', retryAfter: null };
  }
  let data = null;
  try {
    data = JSON.parse(await res.text());
  } catch {
    data = null;
  }
  const retry = Number.parseInt(res.headers.get('Retry-After') || '', 10);
  return openOutcome(res.status, data, retry);
}

function start() {
  const $ = (id) => document.getElementById(id);
  const title = $('share-title');
  const range = $('share-range');
  const labelEl = $('share-label');
  const content = $('share-content');
  const errBox = $('share-error');
  const errTitle = $('share-error-title');
  const message = $('share-message');
  const valid = $('share-valid');
  let player = null;
  let expiryTimer = 0;
  let checking = false;

  const token = parseShareToken(location.hash);
  // Another link pasted into this tab: start over with it.
  window.addEventListener('hashchange', () => location.reload());

  function showError(reason, text) {
    errBox.hidden = false;
    errTitle.textContent = reasonHeading(reason);
    message.textContent = text || '';
    message.dataset.reason = reason;
    document.title = `${reasonHeading(reason)} · Shared video`;
  }

  function clearError() {
    errBox.hidden = true;
    errTitle.textContent = '';
    message.textContent = '';
    delete message.dataset.reason;
  }

  /** Ends what is shown (the link stopped working while open). */
  function stopMedia() {
    if (player) {
      player.stop();
      player = null;
    }
    for (const v of content.querySelectorAll('video')) {
      v.pause();
      v.removeAttribute('src');
      v.load();
    }
    replace(content);
    clearTimeout(expiryTimer);
    valid.hidden = true;
  }

  function fail(outcome) {
    stopMedia();
    let text = outcome.message;
    if (outcome.reason === 'rate_limited' && outcome.retryAfter) text = `${text} Try again in ${outcome.retryAfter} s.`;
    showError(outcome.reason, text);
  }

  async function open(password) {
    if (!token) {
      replace(content);
      showError('invalid', 'The link is incomplete: copy the whole link, including the part after “#”.');
      return;
    }
    const key = await sessionKey(token).catch(() => null);
    const known = password === undefined ? store.get(key) : null;
    if (known) {
      // A reload: the media session cookie (path /api/share/ID/) may still be valid.
      const r = await call('GET', shareUrls(known).info);
      if (r.ok && r.data.id === known) {
        clearError();
        await show(r.data);
        return;
      }
      if (!r.ok && isFinalReason(r.reason) && r.reason !== 'invalid') {
        fail(r);
        return;
      }
      store.set(key, null);
    }
    const r = await call('POST', '/api/share/open', { token, password: password ?? null });
    if (r.ok) {
      store.set(key, r.data.id);
      clearError();
      await show(r.data);
      return;
    }
    if (r.reason === 'password_required' || r.reason === 'wrong_password'
      || (password !== undefined && r.reason === 'rate_limited')) {
      askPassword(r);
      return;
    }
    fail(r);
  }

  function askPassword(r) {
    const input = h('input', { id: 'share-password', type: 'password', autocomplete: 'current-password', required: true });
    const submit = h('button', { id: 'share-password-submit', type: 'submit' }, 'Open');
    const form = h('form', { class: 'card share-password' },
      h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Password'), input),
      h('div', { class: 'form-actions' }, submit));
    replace(content, form);
    if (r.reason === 'password_required') {
      // The first ask is not an error: a heading and the server's text, no alert styling.
      showError('password_required', r.message);
    } else {
      showError(r.reason, r.reason === 'rate_limited' && r.retryAfter ? `${r.message} Try again in ${r.retryAfter} s.` : r.message);
    }
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!input.value) {
        input.focus();
        return;
      }
      submit.disabled = true;
      try {
        await open(input.value);
      } finally {
        submit.disabled = false;
      }
    });
    input.focus();
  }

  /** Asks the server whether the share still works (after a playback error or a drop). */
  async function check(id) {
    if (checking) return;
    checking = true;
    try {
      const r = await call('GET', shareUrls(id).info);
      if (!r.ok && isFinalReason(r.reason)) fail(r);
    } finally {
      checking = false;
    }
  }

  async function show(info) {
    const urls = shareUrls(info.id);
    document.title = `${info.camera} · Shared video`;
    title.textContent = info.camera;
    range.textContent = shareRangeText(info);
    range.hidden = false;
    labelEl.textContent = info.label || '';
    labelEl.hidden = !info.label;
    valid.textContent = `Link valid until ${fmtTime(info.expires_us, false)}`;
    valid.hidden = !info.expires_us;
    if (info.kind === 'live') {
      const { liveView } = await import('./liveview.js');
      const lv = liveView(info.camera, {
        path: urls.live,
        poster: false,
        onState: (state, text) => {
          if (state === 'ended') {
            player = null;
            stopMedia();
            showError('live_ended', liveEndedText(text));
          } else if (state === 'reconnecting') {
            // A refused upgrade (share gone) looks like any drop: ask the server.
            check(info.id);
          }
        },
      });
      lv.video.id = 'share-live';
      lv.video.setAttribute('aria-label', `Live video of ${info.camera}`);
      const box = h('div', { class: 'player big share-player hide-stats', dataset: { camera: info.camera } }, lv.video, lv.msg);
      replace(content, h('div', { class: 'toolbar' }, lv.badge), box);
      player = lv;
      lv.start();
    } else {
      const video = h('video', {
        id: 'share-video', controls: true, playsinline: true, preload: 'metadata', src: urls.clip,
        'aria-label': `Recording of ${info.camera}`,
      });
      video.addEventListener('error', () => check(info.id));
      const actions = h('div', { class: 'form-actions share-actions' },
        info.allow_download
          ? h('a', { id: 'share-download', class: 'btn btn-primary', href: urls.download, download: '' }, 'Download')
          : null);
      replace(content, h('div', { class: 'playback share-player' }, video), actions);
    }
    // When the link expires while open, say so (the server stops serving it then).
    const left = info.expires_us / 1000 - Date.now();
    if (Number.isFinite(left) && left > 0 && left < 2 ** 31 - 1) {
      expiryTimer = setTimeout(() => check(info.id), left + 1000);
    }
  }

  open().catch((e) => {
    console.error(e);
    showError('error', `Could not show this video: ${e.message}`);
  });
}

if (typeof document !== 'undefined' && document.getElementById('share-app')) start();
