// The delivery log: filters, cursor pages (fast at any depth), live updates while open.

import { get, all } from '../api.js';
import { h, fill, table, field, time, ms, badge, link, isoFromLocal } from '../dom.js';
import { onLeave } from '../main.js';

const main = () => document.getElementById('main');
const STATUSES = ['waiting', 'pending', 'retrying', 'success', 'failed', 'exhausted'];
const LIVE_EVERY_MS = 3000;

/** `params` come from the address (#/deliveries?status=failed&…), so a filtered view can be shared. */
export async function show(params) {
  const [types, hooks] = await Promise.all([all('/v1/event-types'), all('/v1/webhooks')]);
  const names = new Map(hooks.map((w) => [w.id, w.name || w.url]));
  const select = (id, label, options) => field(label, h('select', { id },
    h('option', { value: '' }, 'Any'), options.map(([v, text]) => h('option', { value: v, selected: params.get(id) === v }, text))));
  const localOf = (iso) => (iso ? new Date(new Date(iso).getTime() - new Date().getTimezoneOffset() * 60e3).toISOString().slice(0, 16) : '');
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter deliveries' },
    select('status', 'Status', STATUSES.map((s) => [s, s])),
    select('event_type', 'Event type', types.map((t) => [t.value, t.value])),
    select('webhook_id', 'Webhook', hooks.map((w) => [w.id, w.name || w.url])),
    field('Since', h('input', { type: 'datetime-local', id: 'since', value: localOf(params.get('since')) })),
    field('Until', h('input', { type: 'datetime-local', id: 'until', value: localOf(params.get('until')) })),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Filter'),
      h('a', { class: 'button', href: '#/deliveries' }, 'Clear')));
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const id of ['status', 'event_type', 'webhook_id']) { const v = filters.querySelector(`#${id}`).value; if (v) q.set(id, v); }
    for (const id of ['since', 'until']) { const v = isoFromLocal(filters.querySelector(`#${id}`).value); if (v) q.set(id, v); }
    location.hash = `#/deliveries${q.toString() ? `?${q}` : ''}`;
  });
  const query = { limit: 50 };
  for (const k of ['status', 'event_type', 'webhook_id', 'since', 'until']) if (params.get(k)) query[k] = params.get(k);

  const live = h('input', { type: 'checkbox', id: 'live', checked: true });
  const summary = h('p', { class: 'muted', 'aria-live': 'polite' });
  const results = h('div', { id: 'results' });
  const pager = h('div', { class: 'actions' });
  // Folded on a phone unless a filter is set, so the log comes first.
  const folded = window.matchMedia('(max-width: 640px)').matches && ![...params.keys()].length;
  fill(main(), h('div', { class: 'heading' }, h('h1', {}, 'Deliveries'),
    h('label', { class: 'check' }, live, ' Live updates')),
  h('details', { open: !folded, class: 'filter-box' }, h('summary', {}, 'Filters'), filters), summary, results, pager);

  // The pages read so far: going back re-reads a page's address; live updates only on the first.
  const trail = [null];
  let seen = new Set();
  const load = async (cursorUrl, { quiet } = {}) => {
    const page = cursorUrl ? await get(cursorUrl) : await get('/v1/deliveries', query);
    const fresh = quiet ? new Set(page.results.filter((d) => !seen.has(d.id)).map((d) => d.id)) : new Set();
    seen = new Set(page.results.map((d) => d.id));
    fill(summary, `${page.count_exact === false ? 'More than ' : ''}${page.count} deliver${page.count === 1 ? 'y' : 'ies'}`,
      trail.length > 1 ? ` — page ${trail.length}` : '');
    fill(results, table([
      ['Time', (d) => time(d.created_at)],
      ['Status', (d) => badge(d.status)],
      ['Event type', (d) => d.event_type],
      ['Webhook', (d) => names.get(d.webhook_id) || d.webhook_id],
      ['Response', (d) => (d.response_status ? String(d.response_status) : d.error ? 'error' : '—')],
      ['Duration', (d) => ms(d.duration_ms)],
      ['Attempts', (d) => String(d.attempts)],
      ['', (d) => link(`#/deliveries/${d.id}`, 'Details')],
    ], page.results, { empty: 'No deliveries match.' }));
    for (const row of results.querySelectorAll('tbody tr')) {
      const id = row.querySelector('a').getAttribute('href').split('/').pop();
      if (fresh.has(id)) row.classList.add('fresh');
    }
    fill(pager,
      trail.length > 1 ? h('button', { type: 'button', onclick: () => { trail.pop(); load(trail[trail.length - 1]); } }, '← Newer') : null,
      page.next ? h('button', { type: 'button', onclick: () => { const u = new URL(page.next); trail.push(u.pathname + u.search); load(trail[trail.length - 1]); } }, 'Older →') : null);
  };
  await load(null);
  const timer = setInterval(() => {
    if (live.checked && trail.length === 1 && !document.hidden) load(null, { quiet: true }).catch(() => {});
  }, LIVE_EVERY_MS);
  onLeave(() => clearInterval(timer));
}
