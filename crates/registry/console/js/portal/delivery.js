// One delivery: every attempt, what the receiver answered (as text), the payload, retry.

import { get, post, canWrite } from '../api.js';
import { h, fill, table, time, ms, badge, link, toast, button, pretty } from '../dom.js';
import { onLeave } from '../main.js';

const main = () => document.getElementById('main');

/** `awaiting`: the attempt count a retry just asked for; the page refreshes until it shows. */
export async function show(id, awaiting = 0) {
  const d = await get(`/v1/deliveries/${id}`);
  const retry = button('Retry now', async () => {
    await post(`/v1/deliveries/${d.id}/retry`, {});
    toast('Retry queued: a new attempt is on its way.');
    show(d.id, d.attempt_count + 1);
  }, { id: 'retry' });
  fill(main(),
    h('p', {}, link('#/deliveries', '← Deliveries')),
    h('div', { class: 'heading' }, h('h1', {}, d.event_type), badge(d.status)),
    canWrite() ? h('div', { class: 'actions' }, retry) : null,
    h('section', { class: 'card' }, h('dl', { class: 'inline' },
      h('dt', {}, 'Delivery'), h('dd', {}, h('code', {}, d.id)),
      h('dt', {}, 'Event'), h('dd', {}, h('code', {}, d.event_id)),
      d.subject ? [h('dt', {}, 'Subject'), h('dd', {}, d.subject)] : null,
      d.waiting_for ? [h('dt', {}, 'Waits for'), h('dd', {}, link(`#/deliveries/${d.waiting_for}`, d.waiting_for))] : null,
      h('dt', {}, 'Webhook'), h('dd', {}, link(`#/webhooks/${d.webhook_id}`, d.webhook_id)),
      h('dt', {}, 'Created'), h('dd', {}, time(d.created_at)),
      h('dt', {}, 'Next retry'), h('dd', {}, time(d.next_retry_at)),
      d.is_test ? [h('dt', {}, 'Test'), h('dd', {}, 'yes')] : null)),
    h('section', { class: 'card' }, h('h2', {}, `Attempts (${d.attempt_count})`),
      table([
        ['#', (a) => String(a.attempt)],
        ['Time', (a) => time(a.attempted_at)],
        ['Status', (a) => (a.response_status ? String(a.response_status) : '—')],
        ['Duration', (a) => ms(a.duration_ms)],
        ['Error', (a) => a.error || '—'],
        ['Signature', (a) => h('code', { class: 'wrap' }, a.signature)],
      ], d.attempts, { empty: 'No attempt yet.' })),
    h('section', { class: 'card' }, h('h2', {}, 'Last response'),
      h('p', { class: 'muted small' }, d.response_status ? `HTTP ${d.response_status}, ${ms(d.duration_ms)}` : d.error || 'No response yet.'),
      // What the receiver sent is untrusted: shown as text, never parsed as markup.
      h('pre', { class: 'code', id: 'response-body' }, d.response_body ?? '')),
    h('section', { class: 'card' }, h('h2', {}, 'Payload'),
      d.payload_expunged_at ? h('p', { class: 'muted' }, 'Erased on request at ', time(d.payload_expunged_at)) : pretty(d.payload)));
  const waiting = d.attempt_count < awaiting;
  if (waiting || ['waiting', 'pending', 'retrying'].includes(d.status)) {
    const timer = setTimeout(() => { if (location.hash === `#/deliveries/${d.id}`) show(d.id, awaiting); }, waiting ? 1000 : 3000);
    onLeave(() => clearTimeout(timer));
  }
}
