// Vigil's single-page app: session bootstrap, navigation and the hash router. Pages live in
// pages/*.js and are loaded on demand; each renders into <main> and registers cleanups
// (live sockets, timers) that run before the next page.

import * as api from './api.js';
import { h, replace, toast } from './dom.js';
import { go, matchRoute, parseHash } from './router.js';

window.__vigil = window.__vigil || {};
window.__vigil.stats = window.__vigil.stats || {};

const ROUTES = [
  { path: 'setup/:token', module: 'setup', public: true, title: 'Set up' },
  { path: 'login', module: 'login', public: true, title: 'Log in' },
  { path: '', module: 'grid', title: 'Live' },
  { path: 'camera/:name', module: 'camera', title: 'Camera' },
  { path: 'timeline/:name', module: 'timeline', title: 'Timeline' },
  { path: 'events', module: 'events', title: 'Events' },
  { path: 'shares', module: 'shares', title: 'Shares' },
  { path: 'cameras', module: 'cameras', admin: true, title: 'Cameras' },
  { path: 'system', module: 'system', title: 'System' },
  { path: 'account', module: 'account', title: 'Account' },
  { path: 'users', module: 'users', admin: true, title: 'Users' },
];

const main = document.getElementById('main');
const topbar = document.getElementById('topbar');
let current = null; // {controller, cleanups}
let renderSeq = 0;

/** Runs and forgets the current page's cleanups. */
function leavePage() {
  if (!current) return;
  current.controller.abort();
  for (const fn of current.cleanups.splice(0)) {
    try {
      fn();
    } catch (e) {
      console.error(e);
    }
  }
  current = null;
}

function updateChrome(route, session) {
  const inApp = !route.public && session;
  topbar.hidden = !inApp;
  if (!inApp) return;
  const admin = session.role === 'admin';
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.admin) a.hidden = !admin;
    const active = a.dataset.route === route.path.split('/')[0]
      || (a.dataset.route === '' && (route.path.startsWith('camera/') || route.path.startsWith('timeline/')));
    if (active) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.getElementById('whoami').textContent = `${session.username} (${session.role})`;
}

async function render() {
  const seq = ++renderSeq;
  leavePage();
  const { parts, query } = parseHash(location.hash);
  const m = matchRoute(ROUTES, parts);
  if (!m) {
    go('#/');
    return;
  }
  const { route, params } = m;
  let session = api.currentSession();
  if (!route.public && !session) {
    try {
      session = await api.loadSession();
    } catch (e) {
      replace(main, h('p', { class: 'error', role: 'alert' }, e.message));
      return;
    }
    if (seq !== renderSeq) return;
    if (!session) {
      sessionStorage.setItem('vigil.next', location.hash);
      go('#/login');
      return;
    }
  }
  // The policy requires a second factor this user has not set: the Account page only (the
  // server refuses everything else until then).
  if (!route.public && session && session.must_enrol && route.module !== 'account') {
    go('#/account');
    return;
  }
  const controller = new AbortController();
  const page = { controller, cleanups: [] };
  current = page;
  updateChrome(route, session);
  document.title = `${route.title} · Vigil`;
  if (route.admin && session.role !== 'admin') {
    replace(main, h('section', { class: 'page narrow' }, h('h1', null, route.title),
      h('p', { class: 'error', role: 'alert' }, 'Only administrators can open this page.')));
    return;
  }
  const view = h('div', { class: `view view-${route.module}` });
  replace(main, view);
  const ctx = {
    session,
    query,
    signal: controller.signal,
    alive: () => !controller.signal.aborted,
    onCleanup(fn) {
      if (controller.signal.aborted) fn();
      else page.cleanups.push(fn);
    },
    every(ms, fn) {
      const id = setInterval(fn, ms);
      this.onCleanup(() => clearInterval(id));
      return id;
    },
  };
  try {
    const mod = await import(`./pages/${route.module}.js`);
    if (!ctx.alive()) return;
    await mod.render(view, params, ctx);
  } catch (e) {
    if (!ctx.alive() || (e && e.name === 'AbortError')) return;
    if (e instanceof api.ApiError && e.status === 401) return; // routed to login
    console.error(e);
    view.appendChild(h('p', { class: 'error', role: 'alert' }, `Could not load this page: ${e.message}`));
  }
}

api.onUnauthorized(() => {
  const { parts } = parseHash(location.hash);
  if (parts[0] === 'login' || parts[0] === 'setup') return;
  sessionStorage.setItem('vigil.next', location.hash);
  toast('Your session ended; please log in again.');
  go('#/login');
});

document.getElementById('logout').addEventListener('click', async () => {
  try {
    await api.post('/api/logout', {}, { quiet401: true });
  } catch (e) {
    if (!(e instanceof api.ApiError && e.status === 401)) {
      toast(`Logout failed: ${e.message}`, 'error');
      return;
    }
  }
  api.clearSession();
  go('#/login');
});

document.getElementById('skip').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});

window.addEventListener('hashchange', () => {
  render().then(() => {
    if (document.activeElement === document.body) main.focus({ preventScroll: true });
  });
});
if (!location.hash) history.replaceState(null, '', '#/');
render();
