// The audit log: who changed what, field by field (secrets arrive masked from the API).

import { get } from './api.js';
import { h, fill, table, time } from './dom.js';

const main = () => document.getElementById('main');

/** `path`: `/v1/audit-log` (the tenant's) or `/v1/admin/audit-log` (everything). */
export async function show(path) {
  const body = h('div', {});
  const action = h('input', { type: 'text', id: 'audit-action', placeholder: 'webhook.updated' });
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter the audit log' },
    h('div', { class: 'field' }, h('label', { for: 'audit-action' }, 'Action'), action),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Filter')));
  const load = async (url) => {
    const page = url ? await get(url) : await get(path, { limit: 50, action: action.value.trim() || undefined });
    fill(body,
      h('p', { class: 'muted' }, `${page.count} change${page.count === 1 ? '' : 's'}`),
      table([
        ['When', (e) => time(e.at)],
        ['Who', (e) => h('span', {}, e.actor.name || e.actor.kind, h('div', { class: 'muted small' }, e.actor.kind))],
        ['Action', (e) => h('code', {}, e.action)],
        ['Object', (e) => h('code', { class: 'wrap' }, e.resource_id)],
        ['Changes', (e) => changes(e.changes)],
      ], page.results, { empty: 'No changes recorded.' }),
      page.next ? h('div', { class: 'actions' }, h('button', { type: 'button', onclick: () => { const u = new URL(page.next); load(u.pathname + u.search); } }, 'Older →')) : null);
  };
  form.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  fill(main(), h('h1', {}, 'Audit log'), form, body);
  await load();
}

/** Each changed field with its values before and after, as text. */
function changes(c) {
  const fields = Object.entries(c || {});
  if (!fields.length) return '—';
  const show = (v) => (v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));
  return h('dl', { class: 'changes' }, fields.map(([name, v]) => [
    h('dt', {}, name),
    h('dd', {}, 'before' in v ? h('del', {}, show(v.before)) : null, 'before' in v && 'after' in v ? ' → ' : null,
      'after' in v ? h('ins', {}, show(v.after)) : null),
  ]));
}
