// The event catalog: what each type means, the JSON Schema its events follow, an example.

import { all } from '../api.js';
import { h, fill, pretty } from '../dom.js';

export async function show() {
  const types = await all('/v1/event-types');
  fill(document.getElementById('main'),
    h('h1', {}, 'Event catalog'),
    h('p', { class: 'muted' }, `${types.length} event types you can subscribe a webhook to.`),
    types.length ? types.map((t) => h('details', { class: 'card' },
      h('summary', {}, h('strong', {}, t.value), t.label && t.label !== t.value ? ` — ${t.label}` : ''),
      h('p', {}, t.description || 'No description.'),
      t.schema ? [h('h3', {}, 'Schema'), pretty(t.schema)] : h('p', { class: 'muted small' }, 'Any JSON object.'),
      t.example ? [h('h3', {}, 'Example'), pretty(t.example)] : null)) : h('p', { class: 'empty' }, 'The catalog is empty.'));
}
