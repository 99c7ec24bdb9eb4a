// The dashboard's client of /ui/: session, CSRF header on changes, the events stream (ndjson).
let session;

export class LoggedOut extends Error {}

export async function getSession() {
  const r = await fetch('/ui/session', { credentials: 'same-origin' });
  session = r.ok ? await r.json() : undefined;
  return session;
}

export async function login(token) {
  const r = await fetch('/ui/session', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error?.message ?? `login failed (${r.status})`);
  session = body;
  return body;
}

/** Call the agent API through the dashboard: `/fleet/v1/units`, … */
export async function api(path, { method = 'GET', body } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') headers['X-CSRF-Token'] = session?.csrf ?? '';
  const r = await fetch(`/ui/api${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401) throw new LoggedOut();
  const text = await r.text();
  const data = text && (r.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : text;
  if (!r.ok) throw new Error(data?.error?.message ?? `${r.status}`);
  return data;
}

/** All pages of a fleet v1 list. */
export async function list(path, key) {
  const out = [];
  let token = '';
  do {
    const d = await api(`${path}${token ? `?nextPageToken=${encodeURIComponent(token)}` : ''}`);
    out.push(...(d[key] ?? []));
    token = d.nextPageToken ?? '';
  } while (token);
  return out;
}

/** Follow a text stream (ndjson events or a journal): calls onLine per line until aborted. */
export async function follow(path, onLine, signal) {
  const r = await fetch(`/ui/api${path}`, { signal });
  if (r.status === 401) throw new LoggedOut();
  if (!r.ok || !r.body) throw new Error(`${path}: ${r.status}`);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  }
}
