// One webhook: its settings, signing secret, test events, recovery and health.

import { get, post, patch, del, all, canWrite } from '../api.js';
import { h, fill, field, time, link, toast, button, isoFromLocal } from '../dom.js';
import { lineChart } from '../chart.js';
import { state, webhookForm } from './webhooks.js';

const main = () => document.getElementById('main');

/** A secret just created, shown when its webhook's page opens. */
let fresh = null;
export function reveal(secret) { fresh = secret; }

export async function show(id) {
  const w = await get(`/v1/webhooks/${id}`);
  const writes = canWrite();
  const edit = button('Edit', async () => {
    fill(main(), h('h1', {}, `Edit ${w.name || w.url}`), await webhookForm(w, 'Save', async (body) => {
      await patch(`/v1/webhooks/${w.id}`, body);
      toast('Saved.');
      show(w.id);
    }));
  });
  const toggle = button(w.is_active ? 'Disable' : 'Enable', async () => {
    await patch(`/v1/webhooks/${w.id}`, { is_active: !w.is_active });
    toast(w.is_active ? 'Disabled: no deliveries until it is enabled again.' : 'Enabled.');
    show(w.id);
  });
  const remove = button('Delete', async () => {
    if (!confirm(`Delete the webhook ${w.name || w.url}? Its deliveries stop at once.`)) return;
    await del(`/v1/webhooks/${w.id}`);
    toast('Deleted.');
    location.hash = '#/webhooks';
  }, { class: 'danger' });
  fill(main(),
    h('p', {}, link('#/webhooks', '← Webhooks')),
    h('div', { class: 'heading' }, h('h1', {}, w.name || w.url), state(w)),
    h('p', { class: 'muted' }, w.url),
    writes ? h('div', { class: 'actions' }, edit, toggle, remove) : null,
    h('div', { class: 'grid' },
      h('section', { class: 'card' }, h('h2', {}, 'Settings'), h('dl', {},
        h('dt', {}, 'Events'), h('dd', {}, w.events.join(', ')),
        h('dt', {}, 'Description'), h('dd', {}, w.description || '—'),
        h('dt', {}, 'Timeout'), h('dd', {}, `${w.timeout_seconds} s`),
        h('dt', {}, 'Order'), h('dd', {}, w.ordering === 'subject' ? 'In order per subject' : 'None'),
        h('dt', {}, 'Retries'), h('dd', {}, `${w.retry_policy.strategy}, up to ${w.retry_policy.max_retries}`),
        h('dt', {}, 'Created'), h('dd', {}, time(w.created_at)))),
      secretCard(w, writes),
      writes ? await testCard(w) : null),
    h('section', { class: 'card' }, h('h2', {}, 'Health'), h('div', { id: 'health' }, h('p', { class: 'muted' }, 'Loading…'))),
    writes ? recoverCard(w) : null);
  health(w);
}

function secretCard(w, writes) {
  const value = h('code', { id: 'secret' }, 'whsec_••••••••••••••••');
  const shown = () => { value.textContent = w.secret; showBtn.textContent = 'Hide'; };
  const showBtn = button('Reveal', async () => {
    if (value.textContent === w.secret) { value.textContent = 'whsec_••••••••••••••••'; showBtn.textContent = 'Reveal'; } else shown();
  });
  const rotate = button('Rotate', async () => {
    if (!confirm('Rotate the signing secret? The old one keeps signing alongside the new one for a while.')) return;
    const r = await post(`/v1/webhooks/${w.id}/rotate-secret`, {});
    w.secret = r.secret;
    shown();
    toast('Rotated: deliveries carry signatures with both secrets until the old one expires.');
  });
  const card = h('section', { class: 'card' }, h('h2', {}, 'Signing secret'),
    h('p', { class: 'muted small' }, 'Verify each delivery\u2019s webhook-signature header with it (Standard Webhooks).'),
    h('p', {}, value), h('div', { class: 'actions' }, showBtn, writes ? rotate : null));
  if (fresh && fresh === w.secret) { shown(); fresh = null; }
  return card;
}

/** Whether the pattern `p` takes the type `t` (as `hookwire_core::patterns` does). */
function takes(p, t) {
  const ts = t.split('.');
  if (p === '*') return ts[0] !== 'hookwire';
  const ps = p.split('.');
  return ps.length === ts.length && ps.every((s, i) => s === ts[i] || (s === '*' && !(i === 0 && ts[0] === 'hookwire')));
}

async function testCard(w) {
  const types = (await all('/v1/event-types')).filter((t) => w.events.some((p) => takes(p, t.value)));
  const select = h('select', { id: 'test-type' }, types.map((t) => h('option', { value: t.value }, t.value)));
  const result = h('p', { class: 'small', 'aria-live': 'polite' });
  return h('section', { class: 'card' }, h('h2', {}, 'Send a test event'),
    field('Event type', select, 'Sent with the type\u2019s example payload when it has one, marked as a test.'),
    h('div', { class: 'actions' }, button('Send test event', async () => {
      const type = types.find((t) => t.value === select.value);
      const body = type ? { event_type: type.value, ...(type.example !== null && type.example !== undefined ? { example: true } : {}) } : {};
      const sent = await post(`/v1/webhooks/${w.id}/test`, body);
      fill(result, `Sent ${sent.event_type}: `, link(`#/deliveries/${sent.delivery_id}`, 'see its delivery'));
    }, { id: 'send-test' })), result);
}

function recoverCard(w) {
  const since = h('input', { type: 'datetime-local', id: 'recover-since', required: true });
  return h('section', { class: 'card' }, h('h2', {}, 'Recover'),
    h('p', { class: 'muted small' }, 'Sends again every failed delivery since a time, e.g. after an outage of your endpoint.'),
    field('Since', since),
    h('div', { class: 'actions' }, button('Recover failed deliveries', async () => {
      if (!since.value) throw new Error('Choose the time to recover from.');
      const r = await post(`/v1/webhooks/${w.id}/recover`, { since: isoFromLocal(since.value) });
      toast(`Sending ${r.retried} failed deliveries again${r.more ? '; more remain: recover again' : ''}.`);
    })));
}

/** Success rate per hour over a day, latency of the recent deliveries, the failure streak. */
async function health(w) {
  const el = document.getElementById('health');
  const hours = 24;
  const now = Date.now();
  const windows = Array.from({ length: hours }, (_, i) => [now - (hours - i) * 3600e3, now - (hours - i - 1) * 3600e3]);
  const stats = await Promise.all(windows.map(([a, b]) =>
    get(`/v1/webhooks/${w.id}/stats`, { since: new Date(a).toISOString(), until: new Date(b).toISOString() })));
  const recent = await get('/v1/deliveries', { webhook_id: w.id, limit: 100 });
  const rate = stats.map((s, i) => ({ x: windows[i][1], y: s.success_rate === null ? null : s.success_rate * 100 }));
  const latency = recent.results.filter((d) => d.duration_ms !== null)
    .map((d) => ({ x: Date.parse(d.last_attempt_at || d.created_at), y: d.duration_ms })).reverse();
  const day = stats.reduce((a, s) => a + s.total, 0);
  fill(el,
    h('dl', { class: 'inline' },
      h('dt', {}, 'Failure streak'), h('dd', {}, String(w.failure_count)),
      h('dt', {}, 'Last success'), h('dd', {}, time(w.last_success_at)),
      h('dt', {}, 'Last failure'), h('dd', {}, time(w.last_failure_at)),
      h('dt', {}, 'Deliveries, 24 h'), h('dd', {}, String(day)),
      w.disabled_reason ? [h('dt', {}, 'Disabled because'), h('dd', {}, w.disabled_reason)] : null),
    h('div', { class: 'grid' },
      h('figure', {}, lineChart(rate, { max: 100, unit: '%', label: 'Success rate per hour, last 24 hours' }),
        h('figcaption', {}, 'Success rate per hour, last 24 hours')),
      h('figure', {}, lineChart(latency, { unit: 'ms', label: 'Response time of the last 100 deliveries' }),
        h('figcaption', {}, `Response time of the last ${latency.length} deliveries`))),
    h('p', {}, link(`#/deliveries?webhook_id=${w.id}`, 'This webhook\u2019s deliveries →')));
}
