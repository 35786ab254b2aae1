// #/account : the second factor (authenticator app, recovery codes); passkeys (add, list,
// remove); change the password;
// sessions (admin: everyone's) with revoke; API tokens
// (admin: everyone's, and for any user) with scopes, cameras and an expiry; a token is
// shown once, at creation.

import * as api from '../api.js';
import { confirmAction, field, h, replace, toast } from '../dom.js';
import { fmtAgo, fmtTime } from '../format.js';
import { go } from '../router.js';
import * as webauthn from '../webauthn.js';

export async function render(view, params, ctx) {
  const s = ctx.session;
  view.classList.add('stack');
  view.append(h('div', { class: 'toolbar' }, h('h1', null, 'Account'), h('span', { class: 'muted' }, `${s.username} · ${s.role}`)));
  if (s.must_enrol) {
    view.append(h('p', { class: 'card error', id: 'must-enrol', role: 'alert' },
      'Your administrator requires a second factor: set up an authenticator app or a passkey below before anything else.'));
  }
  await secondFactorSection(view, ctx, s);
  await passkeysSection(view, ctx, s);

  // Password.
  const cur = h('input', { name: 'current', type: 'password', autocomplete: 'current-password', required: true });
  const pw = h('input', { name: 'new', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const pw2 = h('input', { name: 'new2', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const err = h('p', { class: 'form-error', role: 'alert' });
  const form = h('form', { id: 'password-form', class: 'card page narrow', novalidate: true },
    h('h2', null, 'Change password'), field('Current password', cur), field('New password', pw, 'At least 8 characters.'),
    field('Repeat new password', pw2), err, h('button', { type: 'submit' }, 'Change password'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    if (pw.value.length < 8) {
      err.textContent = 'The new password needs at least 8 characters.';
      return;
    }
    if (pw.value !== pw2.value) {
      err.textContent = 'The new passwords differ.';
      return;
    }
    try {
      await api.post('/api/account/password', { current: cur.value, new: pw.value });
      form.reset();
      toast('Password changed.', 'ok');
      loadSessions();
    } catch (e2) {
      err.textContent = e2.status === 401 || e2.status === 403 ? 'The current password is wrong.' : e2.message;
    }
  });
  view.append(form);

  if (s.must_enrol) return;

  // Sessions.
  const body = h('tbody');
  view.append(h('h2', null, s.role === 'admin' ? 'Sessions (all users)' : 'Your sessions'),
    h('div', { class: 'table-wrap' }, h('table', { id: 'sessions' },
      h('thead', null, h('tr', null, ...['User', 'Started', 'Last seen', 'Address', 'Browser', ''].map((t) => h('th', { scope: 'col' }, t)))),
      body)));
  const loadSessions = async () => {
    const rows = await api.get('/api/sessions', { signal: ctx.signal });
    if (!ctx.alive()) return;
    replace(body, rows.map((r) => {
      const revoke = h('button', { type: 'button', class: 'btn btn-small btn-danger' }, r.current ? 'Log out here' : 'Revoke');
      revoke.addEventListener('click', async () => {
        if (!r.current && !confirmAction(`End this session of ${r.username}?`)) return;
        try {
          await api.del(`/api/sessions/${encodeURIComponent(r.id)}`, r.current ? { quiet401: true } : undefined);
          if (r.current) {
            api.clearSession();
            go('#/login');
            return;
          }
          toast('Session ended.', 'ok');
          loadSessions();
        } catch (e) {
          toast(`Could not end the session: ${e.message}`, 'error');
        }
      });
      return h('tr', { class: r.current ? 'current' : '' },
        h('td', null, r.username, r.current ? h('span', { class: 'badge live' }, 'this browser') : null),
        h('td', null, fmtTime(r.created_us)), h('td', null, fmtAgo(r.last_seen_us)),
        h('td', { class: 'mono' }, r.address), h('td', { class: 'hint' }, r.user_agent),
        h('td', { class: 'actions' }, revoke));
    }));
  };
  await loadSessions();

  tokensSection(view, ctx, s);
}

/** Scopes a token can hold, with what they open (crates/web/src/token_scope.rs). */
const SCOPES = [
  ['view', 'View', 'cameras, live, recordings, events'],
  ['share', 'Share', 'create and revoke share links'],
  ['cameras', 'Manage cameras', 'add, edit, remove cameras (admins)'],
  ['admin', 'Admin', 'everything an admin can do (admins)'],
];

function tokensSection(view, ctx, s) {
  const admin = s.role === 'admin';
  const body = h('tbody');
  const name = h('input', { name: 'token-name', required: true, maxlength: 64, placeholder: 'e.g. home-assistant' });
  const owner = h('input', { name: 'token-user', placeholder: 'me', autocapitalize: 'none' });
  const boxes = SCOPES.filter(([id]) => admin || id === 'view' || id === 'share').map(([id, label, hint]) => {
    const box = h('input', { type: 'checkbox', name: `scope-${id}`, value: id });
    if (id === 'view') box.checked = true;
    return { id, el: h('label', { class: 'check', title: hint }, box, ` ${label}`), box };
  });
  const cameras = h('input', { name: 'token-cameras', placeholder: 'all', autocapitalize: 'none' });
  const days = h('select', { name: 'token-days' },
    ...[['1', '1 day'], ['30', '30 days'], ['90', '90 days'], ['365', '1 year'], ['3650', '10 years']]
      .map(([v, t]) => h('option', { value: v, selected: v === '90' }, t)));
  const out = h('div', { role: 'status' });
  const form = h('form', { id: 'token-form', class: 'card page' },
    h('div', { class: 'toolbar' }, field('Name', name), admin ? field('Acts as user', owner) : null,
      field('Cameras', cameras, 'Comma-separated; empty: all'), field('Expires after', days)),
    h('fieldset', { class: 'scopes' }, h('legend', null, 'May'), ...boxes.map((b) => b.el)),
    h('button', { type: 'submit' }, 'Create token'));
  view.append(h('h2', null, admin ? 'API tokens (all users)' : 'Your API tokens'),
    h('p', { class: 'hint' }, 'For scripts and integrations: send "Authorization: Bearer TOKEN". ' +
      'A token never opens more than its user can, nor the account pages.'),
    form, out,
    h('div', { class: 'table-wrap' }, h('table', { id: 'tokens-table' },
      h('thead', null, h('tr', null, ...['Name', 'User', 'May', 'Cameras', 'Expires', 'Last used', ''].map((t) => h('th', { scope: 'col' }, t)))),
      body)));
  const load = async () => {
    const rows = await api.get('/api/tokens', { signal: ctx.signal });
    if (!ctx.alive()) return;
    replace(body, rows.length ? rows.map((t) => {
      const del = h('button', { type: 'button', class: 'btn btn-small btn-danger' }, 'Delete');
      del.addEventListener('click', async () => {
        if (!confirmAction(`Delete token ${t.name}? Whatever uses it stops working.`)) return;
        try {
          await api.del(`/api/tokens/${encodeURIComponent(t.id)}`);
          load();
        } catch (e) {
          toast(e.message, 'error');
        }
      });
      const expired = t.expires_us && t.expires_us <= Date.now() * 1000;
      return h('tr', { class: expired ? 'muted' : '' }, h('td', null, t.name), h('td', null, t.username),
        h('td', null, t.scopes.join(', ')), h('td', null, t.cameras ? t.cameras.join(', ') : 'all'),
        h('td', null, t.expires_us ? (expired ? 'expired' : fmtTime(t.expires_us)) : 'never'),
        h('td', null, t.last_used_us ? fmtAgo(t.last_used_us) : 'never'), h('td', { class: 'actions' }, del));
    }) : h('tr', null, h('td', { colspan: 7, class: 'empty' }, 'No tokens.')));
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const body2 = {
        name: name.value.trim(),
        scopes: boxes.filter((b) => b.box.checked).map((b) => b.id),
        expires_in_days: Number(days.value),
      };
      if (admin && owner.value.trim()) body2.username = owner.value.trim();
      const cams = cameras.value.split(',').map((c) => c.trim()).filter(Boolean);
      if (cams.length) body2.cameras = cams;
      const t = await api.post('/api/tokens', body2);
      replace(out, h('p', null, 'Copy this token now; it is not shown again:'), h('p', { class: 'secret mono', id: 'token-secret' }, t.token));
      form.reset();
      // Defaults set as properties are not what reset() restores.
      days.value = '90';
      boxes.forEach((b) => { b.box.checked = b.id === 'view'; });
      load();
    } catch (e2) {
      replace(out, h('p', { class: 'error' }, e2.message));
    }
  });
  load().catch(() => {});
}

/** Two-step sign-in: enrol an authenticator app (QR code), recovery codes, turn it off. */
async function secondFactorSection(view, ctx, s) {
  const box = h('section', { class: 'card page', id: 'second-factor' });
  view.append(box);
  const out = h('div', { role: 'status' });
  const showCodes = (codes) => replace(out,
    h('p', null, 'Recovery codes — each works once if the phone is lost. Keep them somewhere safe; they are not shown again:'),
    h('ol', { class: 'mono', id: 'recovery-codes' }, ...codes.map((c) => h('li', null, c))));
  const passwordForm = (id, label, action) => {
    const pw = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const f = h('form', { id, class: 'toolbar' }, field('Password', pw), h('button', { type: 'submit', class: 'btn' }, label));
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        await action(pw.value);
      } catch (e2) {
        replace(out, h('p', { class: 'error' }, e2.message));
      }
      pw.value = '';
    });
    return f;
  };
  const load = async () => {
    const st = await api.get('/api/account/second-factor', { signal: ctx.signal });
    if (!ctx.alive()) return;
    if (st.totp) {
      replace(box, h('h2', null, 'Two-step sign-in'),
        h('p', { id: 'second-factor-state' }, `On: an authenticator app. ${st.recovery_codes_left} recovery codes left.`),
        passwordForm('recovery-form', 'New recovery codes', async (password) => {
          const r = await api.post('/api/account/second-factor/recovery-codes', { password });
          showCodes(r.recovery_codes);
          load();
        }),
        st.required ? h('p', { class: 'hint' }, 'Your administrator requires it: turning it off asks you to set up a new one.') : null,
        passwordForm('second-factor-remove', 'Turn off', async (password) => {
          await api.post('/api/account/second-factor/remove', { password });
          replace(out);
          toast('Two-step sign-in is off.', 'ok');
          await api.loadSession();
          load();
        }), out);
      return;
    }
    const start = h('button', { type: 'button', id: 'totp-start' }, 'Set up an authenticator app');
    replace(box, h('h2', null, 'Two-step sign-in'),
      h('p', { id: 'second-factor-state' }, st.passkeys
        ? `On: your passkeys are the second step. ${st.recovery_codes_left} recovery codes left. You can add an authenticator app too.`
        : 'Off. With it on, a stolen password alone cannot open your account.'),
      st.passkeys ? passwordForm('recovery-form', 'New recovery codes', async (password) => {
        const r = await api.post('/api/account/second-factor/recovery-codes', { password });
        showCodes(r.recovery_codes);
        load();
      }) : null,
      start, out);
    start.addEventListener('click', async () => {
      try {
        const e = await api.post('/api/account/second-factor/totp');
        // The SVG is the server's own rendering of the otpauth URI; shown as an image
        // (data: URL), never parsed into the page.
        const qr = h('img', {
          id: 'totp-qr', alt: 'QR code for the authenticator app', width: 200, height: 200,
          src: `data:image/svg+xml;base64,${btoa(e.qr_svg)}`,
        });
        const code = h('input', { name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', required: true, maxlength: 6 });
        const f = h('form', { id: 'totp-confirm-form', class: 'toolbar' }, field('Code shown by the app', code), h('button', { type: 'submit' }, 'Turn on'));
        replace(out, h('p', null, 'Scan this with the authenticator app (or type the key), then enter the code it shows.'),
          qr, h('p', { class: 'mono', id: 'totp-secret' }, e.secret), f);
        code.focus();
        f.addEventListener('submit', async (ev) => {
          ev.preventDefault();
          try {
            const r = await api.post('/api/account/second-factor/totp/confirm', { code: code.value.trim() });
            const wasRequired = ctx.session.must_enrol;
            await api.loadSession();
            await load();
            showCodes(r.recovery_codes);
            if (wasRequired) {
              box.append(h('p', null, h('a', { href: '#/', id: 'second-factor-continue' }, 'Continue to Vigil')));
            }
          } catch (e2) {
            code.value = '';
            toast(e2.message, 'error');
          }
        });
      } catch (e2) {
        replace(out, h('p', { class: 'error' }, e2.message));
      }
    });
  };
  await load();
}

/** Passkeys: sign in with one alone, or use one as the second step; add (with the
 * password), list, remove. */
async function passkeysSection(view, ctx, s) {
  const box = h('section', { class: 'card page', id: 'passkeys' });
  view.append(box);
  const out = h('div', { role: 'status', id: 'passkey-status' });
  const body = h('tbody');
  const name = h('input', { name: 'passkey-name', required: true, maxlength: 64, placeholder: 'e.g. phone, laptop' });
  const pw = h('input', { name: 'passkey-password', type: 'password', autocomplete: 'current-password', required: true });
  const add = h('button', { type: 'submit', id: 'passkey-add' }, 'Add a passkey');
  const form = h('form', { id: 'passkey-form', class: 'toolbar' }, field('Name', name), field('Password', pw), add);
  replace(box, h('h2', null, 'Passkeys'),
    h('p', { class: 'hint' }, 'A passkey signs you in without a password (your device checks it is you), ' +
      'and serves as the second step after one.'),
    webauthn.available() ? form : h('p', { class: 'error' }, 'This browser cannot use passkeys on this page.'),
    out,
    h('div', { class: 'table-wrap' }, h('table', { id: 'passkeys-table' },
      h('thead', null, h('tr', null, ...['Name', 'Added', 'Last used', ''].map((t) => h('th', { scope: 'col' }, t)))),
      body)));
  const load = async () => {
    const rows = await api.get('/api/account/passkeys', { signal: ctx.signal });
    if (!ctx.alive()) return;
    replace(body, rows.length ? rows.map((p) => {
      const del = h('button', { type: 'button', class: 'btn btn-small btn-danger' }, 'Remove');
      del.addEventListener('click', async () => {
        if (!confirmAction(`Remove passkey ${p.name}? It stops signing in here.`)) return;
        try {
          await api.del(`/api/account/passkeys/${encodeURIComponent(p.id)}`);
          await api.loadSession();
          load();
        } catch (e) {
          toast(e.message, 'error');
        }
      });
      return h('tr', null, h('td', null, p.name), h('td', null, fmtTime(p.created_us)),
        h('td', null, p.last_used_us ? fmtAgo(p.last_used_us) : 'never'), h('td', { class: 'actions' }, del));
    }) : h('tr', null, h('td', { colspan: 4, class: 'empty' }, 'No passkeys.')));
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    replace(out);
    add.disabled = true;
    try {
      const o = await api.post('/api/account/passkeys/options', { password: pw.value });
      pw.value = '';
      const credential = await webauthn.create(o.options);
      const r = await api.post('/api/account/passkeys', { ticket: o.ticket, name: name.value.trim(), credential });
      form.reset();
      const wasRequired = ctx.session.must_enrol;
      await api.loadSession();
      await load();
      replace(out, h('p', { class: 'ok' }, `Passkey ${r.passkey.name} added.`));
      if (r.recovery_codes) {
        out.append(h('p', null, 'Recovery codes — each works once if the passkey is lost. Keep them somewhere safe; they are not shown again:'),
          h('ol', { class: 'mono', id: 'recovery-codes' }, ...r.recovery_codes.map((c) => h('li', null, c))));
      }
      if (wasRequired) {
        out.append(h('p', null, h('a', { href: '#/', id: 'second-factor-continue' }, 'Continue to Vigil')));
      }
    } catch (e2) {
      pw.value = '';
      replace(out, h('p', { class: 'error', id: 'passkey-error' }, e2 instanceof api.ApiError ? e2.message : webauthn.describe(e2)));
    }
    add.disabled = false;
  });
  await load();
}
