// The system at a glance: throughput, queue depths, failing, disabled and slow webhooks.

import { get } from '../api.js';
import { h, fill, table, time, ms, link } from '../dom.js';
import { onLeave } from '../main.js';

const REFRESH_MS = 5000;

export async function show() {
  const main = document.getElementById('main');
  const body = h('div', {});
  fill(main, h('h1', {}, 'Overview'), body);
  const draw = async () => {
    const o = await get('/v1/admin/overview');
    const hook = (w) => link(`#/admin/tenants/${w.tenant_id}`, w.name || w.url);
    fill(body,
      h('div', { class: 'tiles' },
        tile('Deliveries / s', o.deliveries_per_second.toFixed(1), 'routed, last minute'),
        tile('Succeeded / s', o.succeeded_per_second.toFixed(1), 'of those'),
        tile('Failed / s', o.failed_per_second.toFixed(1), 'of those'),
        tile('Failing webhooks', String(o.failing.count), 'every delivery fails'),
        tile('Disabled webhooks', String(o.disabled.count), 'deactivated')),
      h('p', { class: 'muted small' }, 'Read at ', time(o.at), `; refreshed every ${REFRESH_MS / 1000} s.`),
      h('div', { class: 'grid' },
        h('section', { class: 'card' }, h('h2', {}, 'Queue depths'),
          o.queues === null ? h('p', { class: 'error' }, 'The broker is unreachable.')
            : table([['Queue', (q) => h('code', {}, q.queue)], ['Messages', (q) => String(q.messages)]], queues(o.queues))),
        h('section', { class: 'card' }, h('h2', {}, 'Slowest receivers, last 10 minutes'),
          table([
            ['Receiver', (r) => link(`#/admin/tenants/${r.tenant_id}`, r.url)],
            ['Attempts', (r) => String(r.attempts)],
            ['Mean', (r) => ms(r.mean_ms)],
            ['p95', (r) => ms(r.p95_ms)],
          ], o.slowest, { empty: 'No attempts in the last 10 minutes.' }))),
      h('section', { class: 'card' }, h('h2', {}, 'Failing webhooks'),
        table([['Webhook', hook], ['Streak', (w) => String(w.failure_count)], ['Failing since', (w) => time(w.failing_since)]],
          o.failing.webhooks, { empty: 'None: every active webhook is delivering.' })),
      h('section', { class: 'card' }, h('h2', {}, 'Disabled webhooks'),
        table([['Webhook', hook], ['Reason', (w) => w.disabled_reason || 'disabled by its owner']],
          o.disabled.webhooks, { empty: 'None.' })));
  };
  await draw();
  const timer = setInterval(() => { if (!document.hidden) draw().catch(() => {}); }, REFRESH_MS);
  onLeave(() => clearInterval(timer));
}

/** The main queues one by one; the delay queues of retries as one line. */
function queues(all) {
  const retry = all.filter((q) => /\.retry\.\d+s$/.test(q.queue));
  const rest = all.filter((q) => !retry.includes(q));
  if (!retry.length) return rest;
  const prefix = retry[0].queue.replace(/\.retry\.\d+s$/, '');
  return [...rest, { queue: `${prefix}.retry.* (${retry.length} delay queues)`, messages: retry.reduce((a, q) => a + q.messages, 0) }];
}

function tile(label, value, note) {
  return h('div', { class: 'tile' }, h('div', { class: 'muted small' }, label), h('div', { class: 'big' }, value),
    h('div', { class: 'muted small' }, note));
}
