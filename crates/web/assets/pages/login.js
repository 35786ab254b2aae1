// #/login: user name + password; 401 "wrong user name or password", 429 "too many
// attempts, wait N s" with a countdown. When the account has a second factor the server
// answers a ticket (202) and the page asks for the authenticator's code, a recovery code or
// a passkey. "Sign in with a passkey" needs no name and no password.

import * as api from '../api.js';
import { field, h } from '../dom.js';
import * as webauthn from '../webauthn.js';
import { go } from '../router.js';

export async function render(view, params, ctx) {
  const err = h('p', { class: 'form-error', id: 'login-error', role: 'alert', 'aria-live': 'assertive' });
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const pw = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit' }, 'Log in');
  const note = h('p', { class: 'muted' });
  const form = h('form', { id: 'login-form' }, field('User name', user), field('Password', pw), err, submit);
  const passkey = webauthn.available()
    ? h('button', { type: 'button', class: 'btn', id: 'passkey-login' }, 'Sign in with a passkey')
    : null;
  view.append(h('div', { class: 'auth' }, h('div', { class: 'card' },
    h('h1', null, h('img', { src: '/assets/icon.svg', alt: '', width: 32, height: 32 }), 'Vigil'), note, form, passkey)));
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

  const enter = async () => {
    await api.loadSession();
    if (!ctx.alive()) return;
    const next = sessionStorage.getItem('vigil.next');
    sessionStorage.removeItem('vigil.next');
    go(next && !next.startsWith('#/login') && !next.startsWith('#/setup') ? next : '#/');
  };

  // A passkey alone: the authenticator offers its passkeys for this site, verifies its user.
  if (passkey) {
    passkey.addEventListener('click', async () => {
      err.textContent = '';
      passkey.disabled = true;
      try {
        const o = await api.post('/api/login/passkey/options', {}, { quiet401: true });
        const credential = await webauthn.get(o.options);
        await api.post('/api/login/passkey', { ticket: o.ticket, credential }, { quiet401: true });
        await enter();
      } catch (e) {
        if (e.status === 429) {
          wait(e.retryAfter || 30);
        } else {
          err.textContent = e instanceof api.ApiError ? e.message : webauthn.describe(e);
        }
      }
      passkey.disabled = false;
    });
  }

  // The second step: one field takes the app's 6 digits or a recovery code; a button uses a
  // passkey when the account has one.
  const secondStep = (ticket, methods) => {
    const code = h('input', {
      name: 'code', autocomplete: 'one-time-code', inputmode: 'text', required: true,
      autocapitalize: 'none', spellcheck: 'false', maxlength: 32,
    });
    const err2 = h('p', { class: 'form-error', id: 'second-factor-error', role: 'alert', 'aria-live': 'assertive' });
    const go2 = h('button', { type: 'submit' }, 'Continue');
    const hasTotp = methods.includes('totp');
    const usePasskey = methods.includes('passkey') && webauthn.available()
      ? h('button', { type: 'button', class: 'btn', id: 'second-factor-passkey' }, 'Use a passkey')
      : null;
    const form2 = h('form', { id: 'second-factor-form' },
      usePasskey,
      field(hasTotp ? 'Code' : 'Recovery code', code, hasTotp
        ? 'The 6-digit code of your authenticator app, or one of your recovery codes.'
        : 'One of your recovery codes, if the passkey is not at hand.'), err2, go2);
    form.replaceWith(form2);
    if (passkey) passkey.hidden = true;
    (usePasskey || code).focus();
    if (usePasskey) {
      usePasskey.addEventListener('click', async () => {
        err2.textContent = '';
        usePasskey.disabled = true;
        try {
          const o = await api.post('/api/login/second-factor/passkey', { ticket }, { quiet401: true });
          const assertion = await webauthn.get(o.options);
          await api.post('/api/login/second-factor', { ticket, passkey: assertion }, { quiet401: true });
          await enter();
          return;
        } catch (e) {
          err2.textContent = e instanceof api.ApiError ? e.message : webauthn.describe(e);
        }
        usePasskey.disabled = false;
      });
    }
    form2.addEventListener('submit', async (e) => {
      e.preventDefault();
      err2.textContent = '';
      go2.disabled = true;
      const typed = code.value.trim();
      const body = /^[0-9]{6}$/.test(typed) ? { ticket, code: typed } : { ticket, recovery_code: typed };
      try {
        await api.post('/api/login/second-factor', body, { quiet401: true });
        await enter();
      } catch (e3) {
        code.value = '';
        go2.disabled = false;
        if (e3.status === 429) {
          err2.textContent = `Too many attempts, wait ${e3.retryAfter || 30} s.`;
        } else if (e3.status === 401 && /expired/.test(e3.message)) {
          form2.replaceWith(form);
          err.textContent = 'The sign-in expired; enter the password again.';
          submit.disabled = false;
          pw.focus();
        } else {
          err2.textContent = e3.status === 401 ? 'Wrong or already used code.' : e3.message;
          code.focus();
        }
      }
    });
  };

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    submit.disabled = true;
    try {
      const r = await api.post('/api/login', { username: user.value.trim(), password: pw.value }, { quiet401: true });
      if (r && r.second_factor) {
        pw.value = '';
        secondStep(r.ticket, r.methods || [r.second_factor]);
        return;
      }
      await enter();
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
