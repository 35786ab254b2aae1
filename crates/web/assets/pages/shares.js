// #/shares : the share links (GET /api/shares; an admin sees everyone's, others their own)
// in table#shares-table, one tr[data-share-id] each: what, label, by whom, created,
// expires, views, last use, state and button.share-revoke for active (and used-up: viewers
// already in keep watching) ones (DELETE). Ended
// links stay listed, greyed. Links are made from the timeline (a clip) or a camera (live).

import * as api from '../api.js';
import { confirmAction, h, replace, toast } from '../dom.js';
import { fmtAgo, fmtTime } from '../format.js';
import { KIND_LABELS, STATE_LABELS, rangeText, viewsText } from '../share-dialog.js';

export async function render(view, params, ctx) {
  const body = h('div', { class: 'shares-body' }, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  const refresh = h('button', { type: 'button', class: 'btn btn-small' }, 'Refresh');
  view.append(
    h('div', { class: 'toolbar' }, h('h1', null, 'Shares'), h('span', { class: 'spacer' }), refresh),
    h('p', { class: 'muted' },
      'Links that let someone without an account watch one recorded clip or a camera live until they expire. '
      + 'Make one with “Share” on a camera’s timeline (select a range) or live page.'),
    body);

  async function load() {
    let r;
    try {
      r = await api.get('/api/shares', { signal: ctx.signal });
    } catch (e) {
      if (e.name === 'AbortError' || !ctx.alive()) return;
      if (e instanceof api.ApiError && e.status === 401) return;
      replace(body, h('p', { class: 'error', role: 'alert' }, `Could not load the shares: ${e.message}`));
      return;
    }
    if (!ctx.alive()) return;
    show((r && r.shares) || []);
  }
  refresh.addEventListener('click', load);

  function show(shares) {
    if (!shares.length) {
      replace(body, h('p', { class: 'empty', id: 'shares-empty' },
        'No share links yet. Open a camera’s timeline, select a range and choose “Share”, or use “Share” on a live camera.'));
      return;
    }
    // Active first, then newest first.
    const sorted = [...shares].sort((a, b) => (a.state === 'active' ? 0 : 1) - (b.state === 'active' ? 0 : 1)
      || (b.created_us || 0) - (a.created_us || 0));
    const now = Date.now();
    const rows = sorted.map((s) => {
      const active = s.state === 'active';
      const what = h('td', null,
        h('span', { class: 'share-kind' }, KIND_LABELS[s.kind] || s.kind), ' · ',
        h('a', { href: `#/${s.kind === 'live' ? 'camera' : 'timeline'}/${encodeURIComponent(s.camera)}${s.start_us ? `?t=${s.start_us}` : ''}` }, s.camera),
        h('br'), h('small', { class: 'muted' }, [s.kind === 'live' ? null : rangeText(s.start_us, s.end_us), s.stream ? `${s.stream} stream` : null]
          .filter(Boolean).join(' · ')));
      const flags = [];
      if (s.password) flags.push(h('span', { class: 'badge', title: 'The viewer needs a password' }, 'password'));
      if (s.allow_download && s.kind !== 'live') flags.push(h('span', { class: 'badge', title: 'The viewer may download the clip' }, 'download'));
      const lastUsed = s.last_used_us
        ? [fmtAgo(s.last_used_us, now), s.last_used_address ? h('br') : null,
          s.last_used_address ? h('small', { class: 'muted mono' }, s.last_used_address) : null]
        : 'never';
      let action = null;
      // A used-up link still plays for those already in: revoking ends that too.
      if (active || s.state === 'used_up') {
        action = h('button', { type: 'button', class: 'btn btn-small btn-danger share-revoke', 'aria-label': `Revoke the link to ${s.camera}${s.label ? ` (${s.label})` : ''}` }, 'Revoke');
        action.addEventListener('click', () => revoke(s, action));
      }
      return h('tr', { dataset: { shareId: s.id, state: s.state }, class: active ? null : 'share-inactive' },
        what,
        h('td', null, s.label || h('span', { class: 'muted' }, '—'), flags.length ? h('br') : null, flags),
        h('td', null, s.created_by || '—'),
        h('td', { title: fmtTime(s.created_us) }, fmtTime(s.created_us, false)),
        h('td', { title: fmtTime(s.expires_us) }, fmtTime(s.expires_us, false)),
        h('td', { class: 'num' }, viewsText(s.views, s.max_views)),
        h('td', { title: s.last_used_us ? fmtTime(s.last_used_us) : null }, lastUsed),
        h('td', null, h('span', { class: `badge share-state-${s.state}` }, STATE_LABELS[s.state] || s.state)),
        h('td', { class: 'actions' }, action));
    });
    replace(body, h('div', { class: 'table-wrap' },
      h('table', { id: 'shares-table' },
        h('thead', null, h('tr', null, ...['What', 'Label', 'By', 'Created', 'Expires', 'Views', 'Last used', 'State', '']
          .map((t, i) => h('th', { scope: 'col', class: i === 5 ? 'num' : null }, t || h('span', { class: 'visually-hidden' }, 'Actions'))))),
        h('tbody', null, rows))));
  }

  async function revoke(s, btn) {
    const what = s.kind === 'live' ? `the live view of ${s.camera}` : `the clip of ${s.camera}`;
    if (!confirmAction(`Revoke the link to ${what}${s.label ? ` (“${s.label}”)` : ''}? It stops working at once${s.kind === 'offsite' ? ' and its offsite copy is deleted' : ''}.`)) return;
    btn.disabled = true;
    try {
      await api.del(`/api/shares/${encodeURIComponent(s.id)}`);
      toast('Link revoked.', 'ok');
    } catch (e) {
      if (!(e instanceof api.ApiError && e.status === 401)) toast(`Could not revoke: ${e.message}`, 'error');
      btn.disabled = false;
      return;
    }
    await load();
  }

  await load();
  // Views and states change: refresh, but not under the keyboard (the table is rebuilt).
  ctx.every(30000, () => {
    if (!body.contains(document.activeElement)) load();
  });
}
