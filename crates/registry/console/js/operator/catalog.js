// The event-type catalog: add, change, archive and bring back types.

import { get, post, patch, del } from '../api.js';
import { h, fill, table, field, toast, button, showError, pretty } from '../dom.js';

function parseJson(text, name) {
  if (!text.trim()) return undefined;
  try { return JSON.parse(text); } catch (e) { throw new Error(`${name} is not valid JSON: ${e.message}`); }
}

export async function show() {
  const page = await get('/v1/admin/event-types', { include_archived: true, limit: 100 });
  const value = h('input', { type: 'text', id: 'type-value', required: true, placeholder: 'invoice.paid' });
  const label = h('input', { type: 'text', id: 'type-label', required: true, placeholder: 'Invoice paid' });
  const description = h('input', { type: 'text', id: 'type-description' });
  const schema = h('textarea', { id: 'type-schema', rows: 4, placeholder: '{"type": "object"}' });
  const example = h('textarea', { id: 'type-example', rows: 3, placeholder: '{"id": "in_1"}' });
  const form = h('form', { class: 'card' }, h('h2', {}, 'Add a type'), field('Type', value), field('Label', label),
    field('Description', description), field('JSON Schema (optional)', schema), field('Example (optional)', example),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Add type')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await post('/v1/admin/event-types', {
        value: value.value.trim(), label: label.value, description: description.value || undefined,
        schema: parseJson(schema.value, 'The schema'), example: parseJson(example.value, 'The example'),
      });
      toast(`Type ${value.value} added.`);
      show();
    } catch (e) { showError(e); }
  });
  fill(document.getElementById('main'), h('h1', {}, 'Event types'),
    table([
      ['Type', (t) => h('details', {}, h('summary', {}, t.value), t.schema ? pretty(t.schema) : null)],
      ['Label', (t) => t.label],
      ['Description', (t) => t.description || '—'],
      ['State', (t) => (t.archived ? 'archived' : 'in the catalog')],
      ['', (t) => h('div', { class: 'actions' },
        button('Rename', async () => {
          const next = prompt('New label', t.label);
          if (next === null) return;
          await patch(`/v1/admin/event-types/${encodeURIComponent(t.value)}`, { label: next });
          toast('Changed.');
          show();
        }),
        t.archived
          ? button('Restore', async () => { await patch(`/v1/admin/event-types/${encodeURIComponent(t.value)}`, { archived: false }); show(); })
          : button('Archive', async () => { await del(`/v1/admin/event-types/${encodeURIComponent(t.value)}`); toast('Archived.'); show(); }, { class: 'danger' }))],
    ], page.results, { empty: 'The catalog is empty.' }), form);
}
