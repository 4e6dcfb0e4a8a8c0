// Building the page. Every text, above all what a receiver sent back, goes in as a text node:
// nothing is ever parsed as HTML.

/** An element: `attrs` are attributes, `on…` functions become listeners; children are nodes or text. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces what `el` holds. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A table: `columns` are [heading, row => cell] pairs. */
export function table(columns, rows, { empty = 'Nothing here yet.', caption } = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'scroll' }, h('table', {},
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, columns.map(([name]) => h('th', { scope: 'col' }, name)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, columns.map(([name, cell]) => h('td', { 'data-label': name }, cell(r))))))));
}

/** A labelled form control. */
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2)}`;
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('small', { class: 'muted' }, hint) : null);
}

export function time(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return h('time', { datetime: iso, title: iso }, d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' }));
}

export function ms(n) {
  if (n === null || n === undefined) return '—';
  return n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(2)} s`;
}

/** A status as a coloured label with its word (never colour alone). */
export function badge(status) {
  return h('span', { class: `badge ${status}` }, status);
}

export function link(href, text) {
  return h('a', { href }, text);
}

/** A short message at the bottom of the page. */
export function toast(message, kind = 'ok') {
  const el = document.getElementById('toast');
  fill(el, h('div', { class: `note ${kind}` }, message));
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.replaceChildren(), 6000);
}

/** JSON as indented text. */
export function pretty(value) {
  return h('pre', { class: 'code' }, JSON.stringify(value, null, 2));
}

/** The value of a `datetime-local` input as an RFC 3339 UTC time, or undefined. */
export function isoFromLocal(value) {
  return value ? new Date(value).toISOString() : undefined;
}

/** A button that runs `action` once at a time and shows what went wrong. */
export function button(label, action, attrs = {}) {
  const b = h('button', { type: 'button', ...attrs }, label);
  b.addEventListener('click', async () => {
    b.disabled = true;
    try { await action(); } catch (e) { showError(e); } finally { b.disabled = false; }
  });
  return b;
}

/** An API failure (problem+json) or any error, told to the user. */
export function showError(e) {
  const lines = [e.message || String(e)];
  for (const f of e.errors || []) lines.push(`${f.field}: ${f.message}`);
  toast(lines.join(' — '), 'error');
}
