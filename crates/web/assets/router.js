// Hash routes (`#/camera/NAME?t=…`): parse, match and render one page at a time. A page
// is `render(main, params, query) → cleanup?`; the cleanup (closing live sockets, timers)
// runs before the next page renders.

/** Parses "#/a/b%20c?x=1" → {parts: ['a', 'b c'], query: URLSearchParams}. */
export function parseHash(hash) {
  let h = (hash || '').replace(/^#/, '');
  let q = '';
  const qi = h.indexOf('?');
  if (qi >= 0) {
    q = h.slice(qi + 1);
    h = h.slice(0, qi);
  }
  const parts = h.split('/').filter((p) => p !== '').map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  return { parts, query: new URLSearchParams(q) };
}

/**
 * Finds the route for parts: routes are [{path: 'camera/:name', ...}]; returns
 * {route, params} or null. An empty path matches "#/" and "".
 */
export function matchRoute(routes, parts) {
  for (const route of routes) {
    const pat = route.path.split('/').filter((p) => p !== '');
    if (pat.length !== parts.length) continue;
    const params = {};
    let ok = true;
    for (let i = 0; i < pat.length; i++) {
      if (pat[i].startsWith(':')) params[pat[i].slice(1)] = parts[i];
      else if (pat[i] !== parts[i]) {
        ok = false;
        break;
      }
    }
    if (ok) return { route, params };
  }
  return null;
}

/** Navigates (adds a history entry). */
export function go(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = hash;
}
