// Calls to the public management API. The portal is authenticated by its session cookie (sent
// by the browser; changes carry the session's CSRF token), the operator by the admin token.

export const auth = { mode: 'portal', csrf: null, adminToken: null, session: null };

export class Problem extends Error {
  constructor(status, body) {
    super(body?.detail || body?.title || `HTTP ${status}`);
    this.status = status;
    // The problem's `type` ends with its stable code.
    this.code = body?.type?.split('/').pop();
    this.errors = body?.errors || [];
  }
}

/** `method` on `path` (with `query` and a JSON `body`); resolves to the parsed answer. */
export async function api(method, path, { query, body } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (auth.mode === 'operator') headers.Authorization = `Bearer ${auth.adminToken}`;
  else if (method !== 'GET' && auth.csrf) headers['X-CSRF-Token'] = auth.csrf;
  const res = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const text = await res.text();
  const parsed = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const p = new Problem(res.status, parsed);
    if (res.status === 401) window.dispatchEvent(new CustomEvent('hookwire:signed-out', { detail: p }));
    throw p;
  }
  return parsed;
}

export const get = (path, query) => api('GET', path, { query });
export const post = (path, body) => api('POST', path, { body });
export const patch = (path, body) => api('PATCH', path, { body });
export const del = (path) => api('DELETE', path);

/** Every result of a listing (for small collections: the catalog, a tenant's webhooks). */
export async function all(path, query = {}) {
  const out = [];
  let page = await get(path, { ...query, limit: 100 });
  out.push(...page.results);
  while (page.next && out.length < 2000) {
    const next = new URL(page.next);
    page = await get(next.pathname + next.search);
    out.push(...page.results);
  }
  return out;
}

/** Whether the portal session may change things. */
export function canWrite() {
  if (auth.mode === 'operator') return true;
  return !!auth.session && !auth.session.read_only && auth.session.scopes.includes('webhooks:write');
}
