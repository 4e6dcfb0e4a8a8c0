// Tenants, their API keys and portal links, and erasure of a tenant's events.

import { get, post, del, all } from '../api.js';
import { h, fill, table, field, time, link, toast, button, showError } from '../dom.js';

const main = () => document.getElementById('main');

export async function show() {
  const tenants = await all('/v1/admin/tenants');
  const name = h('input', { type: 'text', id: 'tenant-name', required: true, maxlength: 200 });
  const form = h('form', { class: 'card inline-form' }, field('New tenant', name),
    h('button', { type: 'submit', class: 'primary' }, 'Create tenant'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const t = await post('/v1/admin/tenants', { name: name.value });
      toast(`Tenant ${t.name} created.`);
      location.hash = `#/admin/tenants/${t.id}`;
    } catch (e) { showError(e); }
  });
  fill(main(), h('h1', {}, 'Tenants'), form,
    table([
      ['Name', (t) => link(`#/admin/tenants/${t.id}`, t.name)],
      ['Id', (t) => h('code', {}, t.id)],
      ['Created', (t) => time(t.created_at)],
    ], tenants, { empty: 'No tenants yet.' }));
}

export async function showOne(id) {
  const t = await get(`/v1/admin/tenants/${id}`);
  const secretOut = h('div', { 'aria-live': 'polite' });
  const newKey = button('Create API key', async () => {
    const k = await post('/v1/admin/api-keys', { tenant_id: id });
    fill(secretOut, h('div', { class: 'note ok' }, 'The new key, shown once: ', h('code', { id: 'new-key' }, k.key)));
    await refreshKeys();
  });
  const keysEl = h('div', {});
  const refreshKeys = async () => {
    const rows = await all('/v1/admin/api-keys', { tenant_id: id });
    fill(keysEl, table([
      ['Key', (k) => h('code', {}, `${k.key_prefix}…`)],
      ['Scopes', (k) => k.scopes.join(', ')],
      ['Webhooks', (k) => `${k.webhook_count} of ${k.max_webhooks}`],
      ['Last used', (k) => time(k.last_used_at)],
      ['', (k) => button('Revoke', async () => {
        if (!confirm('Revoke this key? Calls with it are refused from now on.')) return;
        await del(`/v1/admin/api-keys/${k.id}`);
        toast('Key revoked.');
        await refreshKeys();
      }, { class: 'danger' })],
    ], rows, { empty: 'No live keys.' }));
  };
  const readOnly = h('input', { type: 'checkbox', id: 'portal-read-only' });
  const portalOut = h('div', { 'aria-live': 'polite' });
  const openPortal = button('Create portal link', async () => {
    const s = await post('/v1/admin/portal-sessions', { tenant_id: id, read_only: readOnly.checked });
    fill(portalOut, h('div', { class: 'note ok' }, 'One-time link, valid until ', time(s.expires_at), ': ',
      h('a', { href: s.url, target: '_blank', rel: 'noopener noreferrer', id: 'portal-link' }, 'open the portal')));
  });
  fill(main(),
    h('p', {}, link('#/admin/tenants', '← Tenants')),
    h('h1', {}, t.name), h('p', { class: 'muted' }, h('code', {}, t.id), ' · created ', time(t.created_at)),
    h('section', { class: 'card' }, h('h2', {}, 'API keys'), h('div', { class: 'actions' }, newKey), secretOut, keysEl),
    h('section', { class: 'card' }, h('h2', {}, 'Customer portal'),
      h('p', { class: 'muted small' }, 'A link that opens this tenant\u2019s portal once, for an hour.'),
      h('label', { class: 'check' }, readOnly, ' Read-only'), h('div', { class: 'actions' }, openPortal), portalOut),
    erasure(id),
    h('section', { class: 'card' }, h('h2', {}, 'Delete'), h('div', { class: 'actions' }, button('Delete tenant', async () => {
      if (!confirm(`Delete ${t.name}, its keys, webhooks and delivery log?`)) return;
      await del(`/v1/admin/tenants/${id}`);
      toast('Tenant deleted.');
      location.hash = '#/admin/tenants';
    }, { class: 'danger' }))));
  await refreshKeys();
}

function erasure(tenantId) {
  const kind = h('select', { id: 'erase-kind' }, h('option', { value: 'subject' }, 'Every event about a subject'),
    h('option', { value: 'event_id' }, 'One event, by id'));
  const value = h('input', { type: 'text', id: 'erase-value', required: true });
  const out = h('p', { 'aria-live': 'polite' });
  const form = h('form', {}, field('Erase', kind), field('Subject or event id', value),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'danger' }, 'Erase payloads')), out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!confirm('Erase these payloads for good? Deliveries still to come are stopped.')) return;
    try {
      const r = await post('/v1/admin/events/expunge', { tenant_id: tenantId, [kind.value]: value.value.trim() });
      fill(out, `Erased ${r.events_expunged} events; ${r.deliveries_cleared} deliveries cleared, ${r.deliveries_stopped} stopped.`);
    } catch (e) { showError(e); }
  });
  return h('section', { class: 'card' }, h('h2', {}, 'Erasure requests'),
    h('p', { class: 'muted small' }, 'Erases the payloads of this tenant\u2019s events (GDPR requests).'), form);
}
