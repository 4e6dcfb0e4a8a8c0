// The console: a customer portal (a portal session's cookie) or, under #/admin, the operator
// dashboard (the admin token, kept in this tab only). Pages are routed by the address's hash.

import { auth, get, post, del } from './api.js';
import { h, fill, button, showError } from './dom.js';
import * as webhooks from './portal/webhooks.js';
import * as webhook from './portal/webhook.js';
import * as deliveries from './portal/deliveries.js';
import * as delivery from './portal/delivery.js';
import * as catalog from './portal/catalog.js';
import * as overview from './operator/overview.js';
import * as tenants from './operator/tenants.js';
import * as types from './operator/catalog.js';
import * as audit from './audit.js';

const portalRoutes = [
  [/^#\/webhooks\/new$/, () => webhooks.create()],
  [/^#\/webhooks\/([^/?]+)$/, (m) => webhook.show(m[1])],
  [/^#\/deliveries\/([^/?]+)$/, (m) => delivery.show(m[1])],
  [/^#\/deliveries(\?.*)?$/, (m) => deliveries.show(new URLSearchParams((m[1] || '').slice(1)))],
  [/^#\/catalog$/, () => catalog.show()],
  [/^#\/audit-log$/, () => audit.show('/v1/audit-log')],
  [/^#\/webhooks$/, () => webhooks.show()],
];
const operatorRoutes = [
  [/^#\/admin\/tenants\/([^/?]+)$/, (m) => tenants.showOne(m[1])],
  [/^#\/admin\/tenants$/, () => tenants.show()],
  [/^#\/admin\/event-types$/, () => types.show()],
  [/^#\/admin\/audit-log$/, () => audit.show('/v1/admin/audit-log')],
  [/^#\/admin$/, () => overview.show()],
];

/** What a page leaves running (live updates): stopped when the page changes. */
let stops = [];
export function onLeave(stop) { stops.push(stop); }

async function route() {
  for (const stop of stops) stop();
  stops = [];
  const hash = location.hash || '#/webhooks';
  const operator = hash.startsWith('#/admin');
  // A new link opened in a tab that already shows the console.
  if (hash.startsWith('#session=')) return boot();
  if (operator !== (auth.mode === 'operator') || (!operator && !auth.session) || (operator && !auth.adminToken)) {
    return boot();
  }
  document.getElementById('toast').replaceChildren();
  const routes = operator ? operatorRoutes : portalRoutes;
  const found = routes.map(([re, page]) => [hash.match(re), page]).find(([m]) => m);
  nav(hash);
  const main = document.getElementById('main');
  if (!found) return fill(main, h('h1', {}, 'Not found'), h('p', {}, 'There is no such page.'));
  try {
    await found[1](found[0]);
  } catch (e) {
    fill(main, h('h1', {}, 'Something went wrong'), h('p', { class: 'error' }, e.message || String(e)));
  }
  main.focus({ preventScroll: true });
}

function nav(hash) {
  const items = auth.mode === 'operator'
    ? [['#/admin', 'Overview'], ['#/admin/tenants', 'Tenants'], ['#/admin/event-types', 'Event types'], ['#/admin/audit-log', 'Audit log']]
    : [['#/webhooks', 'Webhooks'], ['#/deliveries', 'Deliveries'], ['#/catalog', 'Event catalog'], ['#/audit-log', 'Audit log']];
  const current = items.filter(([href]) => hash === href || hash.startsWith(`${href}/`) || hash.startsWith(`${href}?`)).pop();
  fill(document.getElementById('nav'), items.map(([href, label]) =>
    h('a', { href, 'aria-current': current && current[0] === href ? 'page' : undefined }, label)));
}

function brand(b) {
  document.documentElement.style.setProperty('--accent', b.color);
  document.getElementById('brand-name').textContent = b.name;
  document.title = b.name;
  const logo = document.getElementById('logo');
  if (b.logo_url) { logo.src = b.logo_url; logo.hidden = false; }
}

function signedOut(message) {
  auth.session = null;
  fill(document.getElementById('nav'));
  fill(document.getElementById('who'));
  fill(document.getElementById('main'),
    h('h1', {}, 'Your session has ended'),
    h('p', {}, message || 'Open a new portal link from the site that sent you here.'));
}

async function bootPortal() {
  auth.mode = 'portal';
  const m = location.hash.match(/^#session=([A-Za-z0-9_-]+)$/);
  try {
    if (m) {
      // Spend the link's token at once and take it out of the address bar and the history.
      history.replaceState(null, '', `${location.pathname}#/webhooks`);
      auth.session = await post('/v1/portal-sessions/open', { token: m[1] });
    } else {
      auth.session = await get('/v1/portal-sessions/current');
    }
  } catch (e) {
    return signedOut(e.status === 401 ? e.message : `The portal could not start: ${e.message}`);
  }
  auth.csrf = auth.session.csrf_token;
  brand(auth.session.brand);
  fill(document.getElementById('who'),
    h('span', {}, auth.session.tenant_name),
    auth.session.read_only ? h('span', { class: 'badge neutral' }, 'read-only') : null,
    button('Sign out', async () => { await del('/v1/portal-sessions/current'); signedOut('You signed out.'); }, { class: 'link' }));
  route();
}

function bootOperator() {
  auth.mode = 'operator';
  auth.session = null;
  document.getElementById('brand-name').textContent = 'Hookwire operator';
  document.title = 'Hookwire operator';
  auth.adminToken = sessionStorage.getItem('hookwire-admin-token');
  if (auth.adminToken) {
    fill(document.getElementById('who'), h('span', {}, 'Operator'),
      button('Sign out', async () => { sessionStorage.removeItem('hookwire-admin-token'); auth.adminToken = null; bootOperator(); }, { class: 'link' }));
    return route();
  }
  fill(document.getElementById('nav'));
  fill(document.getElementById('who'));
  const input = h('input', { type: 'password', id: 'admin-token', autocomplete: 'off', required: true });
  const form = h('form', { class: 'card narrow' },
    h('h1', {}, 'Operator sign-in'),
    h('div', { class: 'field' }, h('label', { for: 'admin-token' }, 'Admin token'), input,
      h('small', { class: 'muted' }, 'HOOKWIRE_ADMIN_TOKEN. Kept in this tab only, never in a cookie.')),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    auth.adminToken = input.value.trim();
    try {
      await get('/v1/admin/overview');
      sessionStorage.setItem('hookwire-admin-token', auth.adminToken);
      bootOperator();
    } catch (e) {
      auth.adminToken = null;
      showError(e);
    }
  });
  fill(document.getElementById('main'), form);
}

function boot() {
  return location.hash.startsWith('#/admin') ? bootOperator() : bootPortal();
}

window.addEventListener('hashchange', route);
window.addEventListener('hookwire:signed-out', (ev) => {
  if (auth.mode === 'portal') signedOut(ev.detail.message);
  else { sessionStorage.removeItem('hookwire-admin-token'); auth.adminToken = null; bootOperator(); showError(ev.detail); }
});
boot();
