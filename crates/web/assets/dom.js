// Small DOM helpers. Every string goes in through textContent or setAttribute, never
// innerHTML, so a camera named `<img src=x onerror=…>` is shown as text (CSP backs this up).

/**
 * Creates an element: h('a', {href: '#/', class: 'x'}, 'text', child, [children]).
 * Attributes starting with "on" take a listener (onclick → click); `dataset`, `aria`
 * and boolean properties are handled; null/undefined/false attributes are skipped.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') {
        el.addEventListener(k.slice(2), v);
      } else if (k === 'class') {
        el.className = v;
      } else if (k === 'dataset') {
        for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = String(dv);
      } else if (k === 'value' || k === 'checked' || k === 'selected' || k === 'disabled') {
        el[k] = v;
      } else if (v === true) {
        el.setAttribute(k, '');
      } else {
        el.setAttribute(k, String(v));
      }
    }
  }
  append(el, children);
  return el;
}

/** Appends strings (as text nodes), nodes and nested arrays; skips null/false. */
export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces all children of el. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A labelled form field: <label><span>text</span><input …></label>. */
export function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), input,
    hint ? h('small', { class: 'hint' }, hint) : null);
}

/** A status message in the page's live region (role=status) or an error (role=alert). */
export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const t = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  box.appendChild(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

/** Asks for confirmation (native dialog: accessible, no extra markup). */
export function confirmAction(message) {
  return window.confirm(message);
}

/** A "close" button for a <dialog> header (Escape closes it too). */
export function closeButton() {
  const b = h('button', { type: 'button', class: 'btn btn-small btn-ghost', 'aria-label': 'Close' }, '✕');
  b.addEventListener('click', () => b.closest('dialog')?.close());
  return b;
}
