// #/users (admin): users with their role and camera access; add, edit (role, cameras,
// password reset), remove, reset a locked-out user's second factor; who must have a second
// factor (policy).

import * as api from '../api.js';
import { closeButton, confirmAction, field, h, replace, toast } from '../dom.js';

export async function render(view, params, ctx) {
  const addBtn = h('button', { type: 'button', class: 'btn btn-primary' }, 'Add user');
  const body = h('tbody');
  view.append(h('div', { class: 'toolbar' }, h('h1', null, 'Users'), h('span', { class: 'spacer' }), addBtn),
    h('div', { class: 'table-wrap' }, h('table', { id: 'users' },
      h('thead', null, h('tr', null, ...['User', 'Role', 'Cameras', ''].map((t) => h('th', { scope: 'col' }, t)))), body)));

  // Who must have a second factor.
  const policy = h('select', { name: 'require', id: 'second-factor-policy' },
    h('option', { value: 'none' }, 'Nobody (each user may set one up)'),
    h('option', { value: 'admins' }, 'Administrators'),
    h('option', { value: 'everyone' }, 'Everyone'));
  view.append(h('div', { class: 'card page' }, h('h2', null, 'Two-step sign-in'),
    field('Required of', policy, 'Users it covers without a second factor are asked to set one up before anything else.')));
  policy.value = (await api.get('/api/settings/second-factor', { signal: ctx.signal })).require;
  policy.addEventListener('change', async () => {
    try {
      await api.put('/api/settings/second-factor', { require: policy.value });
      toast('Saved.', 'ok');
    } catch (e) {
      toast(e.message, 'error');
    }
  });

  const [cameras] = await Promise.all([api.get('/api/cameras', { signal: ctx.signal })]);
  const camNames = cameras.map((c) => c.name);

  const load = async () => {
    const users = await api.get('/api/users', { signal: ctx.signal });
    if (!ctx.alive()) return;
    replace(body, users.map((u) => {
      const edit = h('button', { type: 'button', class: 'btn btn-small' }, 'Edit');
      edit.addEventListener('click', () => open(u));
      const del = h('button', { type: 'button', class: 'btn btn-small btn-danger', disabled: u.username === ctx.session.username }, 'Remove');
      del.addEventListener('click', async () => {
        if (!confirmAction(`Remove user ${u.username}? Their sessions and API tokens end too.`)) return;
        try {
          await api.del(`/api/users/${encodeURIComponent(u.username)}`);
          toast(`Removed ${u.username}.`, 'ok');
          load();
        } catch (e) {
          toast(e.message, 'error');
        }
      });
      const reset = h('button', { type: 'button', class: 'btn btn-small', title: 'For a user who lost their phone and recovery codes' }, 'Reset two-step');
      reset.addEventListener('click', async () => {
        if (!confirmAction(`Remove the second factor of ${u.username}? They sign in with the password alone until they set up a new one.`)) return;
        try {
          await api.post(`/api/users/${encodeURIComponent(u.username)}/reset-second-factor`);
          toast(`Second factor of ${u.username} removed.`, 'ok');
        } catch (e) {
          toast(e.message, 'error');
        }
      });
      return h('tr', { dataset: { user: u.username } },
        h('th', { scope: 'row' }, u.username, u.username === ctx.session.username ? h('span', { class: 'muted' }, ' (you)') : null),
        h('td', null, h('span', { class: 'badge' }, u.role)),
        h('td', null, u.role === 'admin' || u.cameras === null || u.cameras === undefined ? 'all' : (u.cameras.join(', ') || 'none')),
        h('td', { class: 'actions' }, edit, reset, del));
    }));
  };
  addBtn.addEventListener('click', () => open(null));
  await load();

  function open(u) {
    const dlg = userDialog(u, camNames, ctx.session.username, async () => {
      dlg.close();
      await load();
    });
    document.body.append(dlg);
    dlg.addEventListener('close', () => dlg.remove());
    ctx.onCleanup(() => dlg.close());
    dlg.showModal();
  }
}

function userDialog(u, camNames, me, onSaved) {
  const isNew = !u;
  const name = h('input', { name: 'username', required: true, maxlength: 64, value: u ? u.username : '', readonly: !isNew, autocapitalize: 'none', spellcheck: 'false', autocomplete: 'off' });
  const pw = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', minlength: 8, placeholder: isNew ? '' : 'unchanged' });
  const role = h('select', { name: 'role' }, h('option', { value: 'viewer' }, 'Viewer (watch only)'), h('option', { value: 'admin' }, 'Administrator'));
  role.value = u ? u.role : 'viewer';
  const all = h('input', { type: 'checkbox', name: 'all-cameras', checked: !u || u.cameras === null || u.cameras === undefined });
  const boxes = camNames.map((n) => h('input', { type: 'checkbox', value: n, checked: !!(u && Array.isArray(u.cameras) && u.cameras.includes(n)) }));
  const camList = h('fieldset', null, h('legend', null, 'Cameras this viewer may watch'),
    h('label', { class: 'field check' }, all, h('span', { class: 'field-label' }, 'All cameras (also future ones)')),
    h('div', { class: 'grid2' }, boxes.map((b) => h('label', { class: 'field check' }, b, h('span', { class: 'field-label' }, b.value)))));
  const sync = () => {
    camList.hidden = role.value === 'admin';
    for (const b of boxes) b.disabled = all.checked;
  };
  role.addEventListener('change', sync);
  all.addEventListener('change', sync);
  sync();
  const err = h('p', { class: 'form-error', role: 'alert' });
  const cancel = h('button', { type: 'button', class: 'btn btn-ghost' }, 'Cancel');
  const form = h('form', { class: 'dlg-body', novalidate: true },
    field('User name', name), field(isNew ? 'Password' : 'New password', pw, isNew ? 'At least 8 characters.' : 'Leave empty to keep it; a new password ends their sessions.'),
    field('Role', role), camList, err,
    h('div', { class: 'form-actions' }, h('button', { type: 'submit' }, isNew ? 'Add user' : 'Save'), cancel));
  const dlg = h('dialog', { 'aria-label': isNew ? 'Add user' : `Edit ${u.username}` },
    h('div', { class: 'dlg-head' }, h('h2', null, isNew ? 'Add user' : `Edit ${u.username}`), closeButton()), form);
  cancel.addEventListener('click', () => dlg.close());
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    const cams = role.value === 'admin' || all.checked ? null : boxes.filter((b) => b.checked).map((b) => b.value);
    if ((isNew || pw.value) && pw.value.length < 8) {
      err.textContent = 'The password needs at least 8 characters.';
      return;
    }
    if (!isNew && u.username === me && role.value !== 'admin' && !confirmAction('Remove your own administrator role?')) return;
    try {
      if (isNew) {
        await api.post('/api/users', { username: name.value.trim(), password: pw.value, role: role.value, cameras: cams });
      } else {
        const b = { role: role.value, cameras: cams };
        if (pw.value) b.password = pw.value;
        await api.put(`/api/users/${encodeURIComponent(u.username)}`, b);
      }
      toast('Saved.', 'ok');
      await onSaved();
    } catch (e2) {
      err.textContent = e2.message;
    }
  });
  return dlg;
}
