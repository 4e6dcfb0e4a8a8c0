// The tenant's webhooks: the list, and the form that creates one.

import { get, post, all, canWrite } from '../api.js';
import { h, fill, table, field, time, badge, link, toast, showError } from '../dom.js';
import { reveal } from './webhook.js';

const main = () => document.getElementById('main');

export async function show() {
  const page = await get('/v1/webhooks', { limit: 100 });
  fill(main(),
    h('div', { class: 'heading' }, h('h1', {}, 'Webhooks'),
      canWrite() ? h('a', { class: 'button primary', href: '#/webhooks/new' }, 'New webhook') : null),
    h('p', { class: 'muted' }, `${page.count} webhook${page.count === 1 ? '' : 's'}. Each receives a signed POST for every event it subscribes to.`),
    table([
      ['Endpoint', (w) => h('div', {}, link(`#/webhooks/${w.id}`, w.name || w.url), w.name ? h('div', { class: 'muted small' }, w.url) : null)],
      ['Events', (w) => w.events.join(', ')],
      ['State', (w) => state(w)],
      ['Failure streak', (w) => String(w.failure_count)],
      ['Last success', (w) => time(w.last_success_at)],
    ], page.results, { empty: 'No webhooks yet: create one to start receiving events.' }));
}

/** Active, failing or disabled, with the reason. */
export function state(w) {
  if (!w.is_active) return h('span', {}, badge('disabled'), w.disabled_reason ? h('span', { class: 'muted small' }, ` ${w.disabled_reason}`) : null);
  if (w.failure_count > 0) return badge('failing');
  return badge('active');
}

/** Checkboxes for the catalog's types, and a box for patterns (`person.*`, `*`). */
export async function eventPicker(selected = []) {
  const types = await all('/v1/event-types');
  const values = new Set(types.map((t) => t.value));
  const boxes = types.map((t) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name: 'event', value: t.value, checked: selected.includes(t.value) }),
    h('span', {}, t.value), t.description ? h('small', { class: 'muted' }, ` ${t.description}`) : null));
  const patterns = h('input', { type: 'text', id: 'event-patterns', value: selected.filter((s) => !values.has(s)).join(', '), placeholder: 'person.*, *' });
  const el = h('fieldset', { class: 'picker' }, h('legend', {}, 'Events'), h('div', { class: 'checks' }, boxes),
    field('Patterns', patterns, 'Comma-separated; * matches any part, e.g. person.*'));
  el.value = () => [
    ...[...el.querySelectorAll('input[name=event]:checked')].map((i) => i.value),
    ...patterns.value.split(',').map((s) => s.trim()).filter(Boolean),
  ];
  return el;
}

/** The fields a webhook is created or edited with. */
export async function webhookForm(w, submitLabel, onSubmit) {
  const url = h('input', { type: 'url', id: 'webhook-url', required: true, value: w?.url || '', placeholder: 'https://example.com/webhooks' });
  const name = h('input', { type: 'text', id: 'webhook-name', value: w?.name || '', maxlength: 200 });
  const description = h('input', { type: 'text', id: 'webhook-description', value: w?.description || '' });
  const picker = await eventPicker(w?.events || []);
  const ordering = h('select', { id: 'webhook-ordering' },
    h('option', { value: 'none', selected: (w?.ordering || 'none') === 'none' }, 'As fast as possible (no order)'),
    h('option', { value: 'subject', selected: w?.ordering === 'subject' }, 'In order per subject'));
  const form = h('form', { class: 'card' },
    field('Endpoint URL', url), field('Name', name), field('Description', description), picker,
    field('Delivery order', ordering, 'In order per subject: events with the same subject arrive one after another, in the order they were published.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, submitLabel),
      h('a', { class: 'button', href: w ? `#/webhooks/${w.id}` : '#/webhooks' }, 'Cancel')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    try {
      await onSubmit({ url: url.value.trim(), name: name.value, description: description.value, events: picker.value(), ordering: ordering.value });
    } catch (e) {
      showError(e);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

export async function create() {
  const form = await webhookForm(null, 'Create webhook', async (body) => {
    const w = await post('/v1/webhooks', body);
    location.hash = `#/webhooks/${w.id}`;
    toast('Webhook created. Its signing secret is shown below.');
    reveal(w.secret);
  });
  fill(main(), h('h1', {}, 'New webhook'), form);
  document.getElementById('webhook-url').focus();
}
