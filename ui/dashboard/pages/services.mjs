// Services: every endpoint with its health (GET /flotilla/v1/services, kept current with its watch)
// and this agent's proxy listeners (GET /flotilla/v1/status).
import { h } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { LoggedOut, api, follow } from '../api.mjs';

export function Services({ onLoggedOut }) {
  const [services, setServices] = useState(undefined);
  const [proxy, setProxy] = useState(undefined);
  const [err, setErr] = useState('');
  useEffect(() => {
    const ac = new AbortController();
    const all = new Map();
    follow(
      '/flotilla/v1/services?watch=true',
      (line) => {
        if (!line) return;
        const d = JSON.parse(line);
        if (Array.isArray(d.services)) for (const x of d.services) all.set(x.name, x.endpoints);
        else
          for (const [n, eps] of Object.entries(d.services ?? {}))
            if (eps.length) all.set(n, eps);
            else all.delete(n);
        setServices(new Map(all));
      },
      ac.signal,
    ).catch((e) => (e instanceof LoggedOut ? onLoggedOut() : e.name !== 'AbortError' && setErr(e.message)));
    api('/flotilla/v1/status').then(
      (st) => setProxy(st.subsystems?.proxy ?? { state: 'unknown' }),
      (e) => setProxy({ state: 'unknown', reason: e.message }),
    );
    return () => ac.abort();
  }, []);
  const rows = [...(services ?? new Map())].sort(([a], [b]) => (a < b ? -1 : 1));
  return h('main', null, [
    h('h1', null, 'Services'),
    err && h('p', { role: 'alert', class: 'error' }, err),
    h('table', { id: 'services' }, [
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          ['Service', 'Address', 'Health', 'Unit', 'Machine'].map((t) => h('th', { scope: 'col' }, t)),
        ),
      ),
      h(
        'tbody',
        null,
        rows.flatMap(([name, eps]) =>
          eps.map((e) =>
            h('tr', { 'data-service': name }, [
              h('td', null, name),
              h('td', null, e.address),
              h('td', { class: `health-${e.health}` }, e.health),
              h('td', null, e.unit ? h('a', { href: `#/unit/${e.unit}` }, e.unit) : '-'),
              h(
                'td',
                null,
                e.machineID ? h('a', { href: `#/machine/${e.machineID}` }, e.machineID.slice(0, 8)) : '-',
              ),
            ]),
          ),
        ),
      ),
    ]),
    services && rows.length === 0 && h('p', null, 'No service endpoints registered.'),
    h('h2', null, 'Proxy listeners on this machine'),
    !proxy && h('p', null, 'Loading…'),
    proxy &&
      (proxy.listeners
        ? h('table', { id: 'listeners' }, [
            h(
              'thead',
              null,
              h(
                'tr',
                null,
                Object.keys(proxy.listeners[0] ?? { listen: 1 }).map((t) => h('th', { scope: 'col' }, t)),
              ),
            ),
            h(
              'tbody',
              null,
              proxy.listeners.map((l) =>
                h(
                  'tr',
                  null,
                  Object.values(l).map((v) =>
                    h('td', null, typeof v === 'object' ? JSON.stringify(v) : String(v)),
                  ),
                ),
              ),
            ),
          ])
        : h('p', null, `proxy: ${proxy.state}${proxy.reason ? ` (${proxy.reason})` : ''}`)),
  ]);
}
