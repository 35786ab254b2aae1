// The JSON API client: every non-GET request carries the session's CSRF token (from
// GET /api/session); a 401 sends the user to the login page (except on the login and
// setup calls themselves, whose 401 is an answer the page shows).

/** An API error: HTTP status, the server's `{"error"}` message, Retry-After seconds. */
export class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

let csrfToken = null;
let sessionInfo = null;
const unauthorizedHandlers = [];

/** Registers a function called on any 401 (the app routes to #/login). */
export function onUnauthorized(fn) {
  unauthorizedHandlers.push(fn);
}

/** The current session (`{username, role, cameras, csrf_token}`) or null. */
export function currentSession() {
  return sessionInfo;
}

/** Forgets the session (after logout or a 401). */
export function clearSession() {
  sessionInfo = null;
  csrfToken = null;
}

/** GET /api/session; null when not logged in (never redirects). */
export async function loadSession() {
  try {
    sessionInfo = await request('GET', '/api/session', undefined, { quiet401: true });
    csrfToken = sessionInfo && sessionInfo.csrf_token;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      clearSession();
      return null;
    }
    throw e;
  }
  return sessionInfo;
}

/**
 * Sends a request; resolves to the parsed JSON body (null for an empty body), rejects with
 * ApiError. Options: `quiet401` (no redirect on 401), `signal` (AbortSignal).
 */
export async function request(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') {
    if (!csrfToken && !opts.quiet401) {
      // A fresh page load: fetch the token once before the first state change.
      await loadSession();
    }
    if (csrfToken) headers['X-CSRF-Token'] = csrfToken;
  }
  // The page runs under `Referrer-Policy: no-referrer`, which by the Fetch standard
  // (§ append a request Origin header) makes a same-origin POST carry `Origin: null` in some
  // browsers; the server refuses state changes without our own Origin. 'same-origin' keeps
  // the real Origin on these requests and still never sends anything to another site.
  const init = {
    method, headers, credentials: 'same-origin', cache: 'no-store', signal: opts.signal, referrerPolicy: 'same-origin',
  };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network error: the server cannot be reached');
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const retry = Number.parseInt(res.headers.get('Retry-After') || '', 10);
    const msg = (data && typeof data.error === 'string' && data.error) || `${res.status} ${res.statusText}`;
    const err = new ApiError(res.status, msg, Number.isFinite(retry) ? retry : undefined);
    if (res.status === 401 && !opts.quiet401) {
      clearSession();
      for (const fn of unauthorizedHandlers) fn();
    }
    throw err;
  }
  return data;
}

/** Shorthands. */
export const get = (path, opts) => request('GET', path, undefined, opts);
export const post = (path, body, opts) => request('POST', path, body === undefined ? {} : body, opts);
export const put = (path, body, opts) => request('PUT', path, body, opts);
export const del = (path, opts) => request('DELETE', path, undefined, opts);

/** Builds "/api/…?a=1&b=2", skipping null/undefined/'' values. */
export function url(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === null || v === undefined || v === '') continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** Path segment of a camera/user name (names are restricted, but encode anyway). */
export const seg = (s) => encodeURIComponent(s);
