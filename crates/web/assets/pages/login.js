// #/login: user name + password; 401 "wrong user name or password", 429 "too many
// attempts, wait N s" with a countdown.

import * as api from '../api.js';
import { field, h } from '../dom.js';
import { go } from '../router.js';

export async function render(view, params, ctx) {
  const err = h('p', { class: 'form-error', id: 'login-error', role: 'alert', 'aria-live': 'assertive' });
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const pw = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit' }, 'Log in');
  const note = h('p', { class: 'muted' });
  const form = h('form', { id: 'login-form' }, field('User name', user), field('Password', pw), err, submit);
  view.append(h('div', { class: 'auth' }, h('div', { class: 'card' },
    h('h1', null, h('img', { src: '/assets/icon.svg', alt: '', width: 32, height: 32 }), 'Vigil'), note, form)));
  user.focus();

  // Already logged in (e.g. the back button): go on.
  api.loadSession().then((s) => {
    if (s && ctx.alive()) go('#/');
  }).catch(() => {});
  api.get('/api/setup', { quiet401: true }).then((s) => {
    if (s && s.needed && ctx.alive()) {
      note.textContent = 'No account exists yet: open the setup link that Vigil printed when it started.';
    }
  }).catch(() => {});

  let countdown = null;
  ctx.onCleanup(() => clearInterval(countdown));
  const wait = (seconds) => {
    let left = Math.max(1, seconds);
    submit.disabled = true;
    const show = () => {
      err.textContent = `Too many attempts, wait ${left} s.`;
    };
    show();
    clearInterval(countdown);
    countdown = setInterval(() => {
      left -= 1;
      if (left <= 0) {
        clearInterval(countdown);
        submit.disabled = false;
        err.textContent = '';
      } else {
        show();
      }
    }, 1000);
  };

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    submit.disabled = true;
    try {
      await api.post('/api/login', { username: user.value.trim(), password: pw.value }, { quiet401: true });
      await api.loadSession();
      if (!ctx.alive()) return;
      const next = sessionStorage.getItem('vigil.next');
      sessionStorage.removeItem('vigil.next');
      go(next && !next.startsWith('#/login') && !next.startsWith('#/setup') ? next : '#/');
    } catch (e2) {
      pw.value = '';
      if (e2.status === 429) {
        wait(e2.retryAfter || 30);
        return;
      }
      err.textContent = e2.status === 401 ? 'Wrong user name or password.' : e2.message;
      submit.disabled = false;
      pw.focus();
    }
  });
}
