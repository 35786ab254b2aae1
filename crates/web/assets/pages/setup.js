// #/setup/TOKEN: creates the first (admin) account with the single-use token printed by
// `vigil serve` / `vigil demo`, then the user is logged in.

import * as api from '../api.js';
import { field, h } from '../dom.js';
import { go } from '../router.js';

export async function render(view, params, ctx) {
  const err = h('p', { class: 'form-error', id: 'setup-error', role: 'alert' });
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, maxlength: 64, value: 'admin', autocapitalize: 'none', spellcheck: 'false' });
  const pw = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const pw2 = h('input', { name: 'password2', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const submit = h('button', { type: 'submit' }, 'Create administrator');
  const form = h('form', { id: 'setup-form', novalidate: true },
    field('User name', user),
    field('Password', pw, 'At least 8 characters. There is no default password.'),
    field('Repeat password', pw2),
    err, submit);
  view.append(h('div', { class: 'auth' }, h('div', { class: 'card' },
    h('h1', null, h('img', { src: '/assets/icon.svg', alt: '', width: 32, height: 32 }), 'Welcome to Vigil'),
    h('p', { class: 'muted' }, 'Create the administrator account. This link works once and expires after an hour.'),
    form)));

  try {
    const s = await api.get('/api/setup', { quiet401: true });
    if (s && s.needed === false) {
      err.textContent = 'Vigil is already set up.';
      form.append(h('p', null, h('a', { href: '#/login' }, 'Go to the login page')));
      submit.disabled = true;
    }
  } catch {
    // The form still works; the POST answers with the real reason.
  }
  user.focus();

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    if (!user.value.trim()) {
      err.textContent = 'Enter a user name.';
      user.focus();
      return;
    }
    if (pw.value.length < 8) {
      err.textContent = 'The password needs at least 8 characters.';
      pw.focus();
      return;
    }
    if (pw.value !== pw2.value) {
      err.textContent = 'The passwords differ.';
      pw2.focus();
      return;
    }
    submit.disabled = true;
    try {
      await api.post('/api/setup', { token: params.token, username: user.value.trim(), password: pw.value }, { quiet401: true });
      await api.loadSession();
      if (!ctx.alive()) return;
      go('#/');
    } catch (e2) {
      err.textContent = e2.status === 403
        ? 'This setup link is invalid, used or expired. Restart Vigil to get a new one.'
        : e2.status === 409 ? 'Vigil is already set up: log in instead.' : e2.message;
      submit.disabled = false;
    }
  });
}
