// flotilla dashboard: Preact (no JSX, no build-time magic), hash routes, live from /flotilla/v1/events.
import { h, render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { LoggedOut, api, follow, getSession, list, login } from './api.mjs';
import './style.css';

const DRAFT = 'flotilla.draft';

function useRoute() {
  const [hash, setHash] = useState(location.hash || '#/overview');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/overview');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash.slice(2).split('/').map(decodeURIComponent);
}

/** Cluster state: machines, units, states; refreshed on each registry event (no polling). */
function useCluster(onLoggedOut) {
  const [data, setData] = useState({ machines: [], units: [], states: [], events: [], ready: false });
  useEffect(() => {
    const ac = new AbortController();
    let timer;
    const events = [];
    const load = async () => {
      try {
        const [machines, units, states] = await Promise.all([
          list('/fleet/v1/machines', 'machines'),
          list('/fleet/v1/units', 'units'),
          list('/fleet/v1/state', 'states'),
        ]);
        setData({ machines, units, states, events: events.slice(-500), ready: true });
      } catch (e) {
        if (e instanceof LoggedOut) onLoggedOut();
      }
    };
    void load();
    const onLine = (line) => {
      if (!line) return;
      const ev = JSON.parse(line);
      if (ev.kind === 'ping' || ev.kind === 'hello') return;
      events.push({ ...ev, at: new Date().toISOString() });
      if (events.length > 1000) events.splice(0, events.length - 1000);
      clearTimeout(timer);
      timer = setTimeout(load, 30); // coalesce a burst of events into one read
    };
    follow('/flotilla/v1/events', onLine, ac.signal).catch((e) => {
      if (e instanceof LoggedOut) onLoggedOut();
    });
    return () => (ac.abort(), clearTimeout(timer));
  }, []);
  return data;
}

function Login({ onIn, error }) {
  const [err, setErr] = useState(error ?? '');
  useEffect(() => {
    const m = /token=([A-Za-z0-9_-]+)/.exec(location.hash);
    if (!m) return;
    history.replaceState(null, '', '/ui/#/overview'); // the token leaves the address bar at once
    login(m[1]).then(onIn, (e) => setErr(e.message));
  }, []);
  return h('main', { class: 'login' }, [
    h('h1', null, 'flotilla'),
    h('p', null, 'Log in with the URL printed by `flotilla dashboard login-url` on a machine.'),
    err && h('p', { role: 'alert', class: 'error' }, err),
  ]);
}

const NAV = [
  ['overview', 'Overview'],
  ['units', 'Units'],
  ['submit', 'Submit'],
  ['events', 'Events'],
  ['updates', 'Updates'],
];

function Nav({ page, session, theme, setTheme }) {
  return h('header', null, [
    h('strong', null, 'flotilla'),
    h(
      'nav',
      { 'aria-label': 'main' },
      NAV.map(([id, label]) =>
        h('a', { href: `#/${id}`, 'aria-current': page === id ? 'page' : undefined }, label),
      ),
    ),
    h('span', { class: 'who' }, `${session.role} (${session.who})`),
    h(
      'button',
      { onClick: () => setTheme(theme === 'dark' ? 'light' : 'dark') },
      theme === 'dark' ? 'Light' : 'Dark',
    ),
  ]);
}

function unitRows(c) {
  const st = new Map(c.states.map((s) => [s.name, s]));
  return c.units.map((u) => {
    const s = st.get(u.name) ?? {};
    const m = c.machines.find((x) => x.id === (s.machineID ?? u.machineID));
    return {
      name: u.name,
      machine: m ? `${m.id.slice(0, 8)}/${m.primaryIP}` : u.machineID ? u.machineID.slice(0, 8) : '-',
      desired: u.desiredState,
      current: u.currentState,
      active: s.systemdActiveState ? `${s.systemdActiveState}/${s.systemdSubState}` : '-',
    };
  });
}

function Overview({ c }) {
  const counts = {};
  for (const u of c.units) counts[u.currentState ?? 'unknown'] = (counts[u.currentState] ?? 0) + 1;
  const unplaced = c.units.filter((u) => u.desiredState !== 'inactive' && !u.machineID);
  return h('main', null, [
    h('h1', null, 'Overview'),
    h('h2', null, `Machines (${c.machines.length})`),
    h('table', null, [
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          ['Machine', 'IP', 'Metadata', 'Units'].map((t) => h('th', { scope: 'col' }, t)),
        ),
      ),
      h(
        'tbody',
        null,
        c.machines.map((m) =>
          h('tr', { key: m.id, 'data-machine': m.id }, [
            h('td', null, h('a', { href: `#/machine/${m.id}` }, m.id.slice(0, 12))),
            h('td', null, m.primaryIP),
            h(
              'td',
              null,
              Object.entries(m.metadata ?? {})
                .map(([k, v]) => `${k}=${v}`)
                .join(', '),
            ),
            h('td', null, String(c.units.filter((u) => u.machineID === m.id).length)),
          ]),
        ),
      ),
    ]),
    h('h2', null, 'Units by state'),
    h(
      'ul',
      null,
      Object.entries(counts).map(([k, n]) => h('li', null, `${k}: ${n}`)),
    ),
    h('h2', null, `Not placed (${unplaced.length})`),
    h(
      'ul',
      null,
      unplaced.map((u) => h('li', null, h('a', { href: `#/unit/${u.name}` }, u.name))),
    ),
  ]);
}

const COLS = [
  ['name', 'Unit'],
  ['machine', 'Machine'],
  ['desired', 'Desired'],
  ['current', 'Current'],
  ['active', 'Active/sub'],
];

function Units({ c }) {
  const [q, setQ] = useState('');
  const [sort, setSort] = useState(['name', 1]);
  const rows = useMemo(() => {
    const r = unitRows(c).filter((x) => !q || Object.values(x).some((v) => String(v).includes(q)));
    const [k, d] = sort;
    return r.sort((a, b) => (String(a[k]) < String(b[k]) ? -d : String(a[k]) > String(b[k]) ? d : 0));
  }, [c, q, sort]);
  return h('main', null, [
    h('h1', null, `Units (${rows.length})`),
    h('label', null, ['Filter ', h('input', { value: q, onInput: (e) => setQ(e.currentTarget.value) })]),
    h('table', { id: 'units' }, [
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          COLS.map(([k, t]) =>
            h(
              'th',
              {
                scope: 'col',
                'aria-sort': sort[0] === k ? (sort[1] > 0 ? 'ascending' : 'descending') : 'none',
              },
              h('button', { class: 'link', onClick: () => setSort([k, sort[0] === k ? -sort[1] : 1]) }, t),
            ),
          ),
        ),
      ),
      h(
        'tbody',
        null,
        rows.map((r) =>
          h('tr', { key: r.name, 'data-unit': r.name }, [
            h('td', null, h('a', { href: `#/unit/${r.name}` }, r.name)),
            h('td', { 'data-col': 'machine' }, r.machine),
            h('td', { 'data-col': 'desired' }, r.desired),
            h('td', { 'data-col': 'current' }, r.current ?? '-'),
            h('td', { 'data-col': 'active' }, r.active),
          ]),
        ),
      ),
    ]),
  ]);
}

function Unit({ name, c, session, onLoggedOut }) {
  const [status, setStatus] = useState('');
  const [journal, setJournal] = useState([]);
  const [msg, setMsg] = useState('');
  const u = c.units.find((x) => x.name === name);
  useEffect(() => {
    const ac = new AbortController();
    const lines = [];
    api(`/flotilla/v1/units/${encodeURIComponent(name)}/status?lines=10`).then(setStatus, (e) =>
      setStatus(e.message),
    );
    follow(
      `/flotilla/v1/units/${encodeURIComponent(name)}/journal?lines=20&follow=true`,
      (l) => {
        lines.push(l);
        if (lines.length > 500) lines.shift();
        setJournal(lines.slice());
      },
      ac.signal,
    ).catch((e) => e instanceof LoggedOut && onLoggedOut());
    return () => ac.abort();
  }, [name]);
  const act = async (desiredState, confirmText) => {
    if (confirmText && !confirm(confirmText)) return;
    try {
      if (desiredState === 'destroy') {
        await api(`/fleet/v1/units/${encodeURIComponent(name)}`, { method: 'DELETE' });
        location.hash = '#/units';
      } else
        await api(`/fleet/v1/units/${encodeURIComponent(name)}`, { method: 'PUT', body: { desiredState } });
      setMsg(`${desiredState}: requested`);
    } catch (e) {
      if (e instanceof LoggedOut) onLoggedOut();
      else setMsg(e.message);
    }
  };
  const op = session.role === 'operator';
  return h('main', null, [
    h('h1', null, name),
    !u && h('p', null, 'No such unit (yet).'),
    u &&
      h(
        'p',
        null,
        `desired ${u.desiredState}, current ${u.currentState ?? '-'}, machine ${u.machineID ?? 'none'}`,
      ),
    h('div', { class: 'actions' }, [
      h('button', { disabled: !op, onClick: () => act('launched') }, 'Start'),
      h('button', { disabled: !op, onClick: () => act('inactive', `Stop ${name}?`) }, 'Stop'),
      h(
        'button',
        {
          disabled: !op,
          onClick: () => act('destroy', `Destroy ${name}? This removes it from the cluster.`),
        },
        'Destroy',
      ),
    ]),
    msg && h('p', { role: 'status' }, msg),
    u && h('h2', null, 'Unit file'),
    u && h('pre', null, u.options.map((o) => `[${o.section}] ${o.name}=${o.value}`).join('\n')),
    h('h2', null, 'systemctl status'),
    h('pre', null, status),
    h('h2', null, 'Journal (follow)'),
    h('pre', { id: 'journal', 'aria-live': 'polite' }, journal.join('\n')),
  ]);
}

/** Paste a unit file; the API's error (with its line) shows in the form; the draft survives a re-login. */
function Submit({ onLoggedOut }) {
  const [name, setName] = useState(() => JSON.parse(sessionStorage.getItem(DRAFT) ?? '{}').name ?? '');
  const [text, setText] = useState(() => JSON.parse(sessionStorage.getItem(DRAFT) ?? '{}').text ?? '');
  const [err, setErr] = useState('');
  useEffect(() => sessionStorage.setItem(DRAFT, JSON.stringify({ name, text })), [name, text]);
  const submit = async (e) => {
    e.preventDefault();
    if (text.length > 64 * 1024) return setErr('the unit file is larger than 64 KiB: refused');
    const options = [];
    let section = '';
    for (const [i, raw] of text.split('\n').entries()) {
      const l = raw.trim();
      if (!l || l.startsWith('#') || l.startsWith(';')) continue;
      const s = /^\[([^\]]+)\]$/.exec(l);
      if (s) section = s[1];
      else if (l.includes('=') && section)
        options.push({
          section,
          name: l.slice(0, l.indexOf('=')).trim(),
          value: l.slice(l.indexOf('=') + 1).trim(),
        });
      else return setErr(`line ${i + 1}: expected [Section] or Key=Value`);
    }
    try {
      await api(`/fleet/v1/units/${encodeURIComponent(name)}`, {
        method: 'PUT',
        body: { desiredState: 'launched', options },
      });
      sessionStorage.removeItem(DRAFT);
      location.hash = `#/unit/${name}`;
    } catch (e2) {
      if (e2 instanceof LoggedOut) onLoggedOut();
      else setErr(e2.message);
    }
  };
  return h('main', null, [
    h('h1', null, 'Submit a unit'),
    h('form', { onSubmit: submit }, [
      h('label', null, [
        'Name ',
        h('input', { value: name, required: true, onInput: (e) => setName(e.currentTarget.value) }),
      ]),
      h('label', null, [
        'Unit file',
        h('textarea', { rows: 14, value: text, onInput: (e) => setText(e.currentTarget.value) }),
      ]),
      err && h('p', { role: 'alert', class: 'error' }, err),
      h('button', { type: 'submit' }, 'Submit and start'),
    ]),
  ]);
}

function Events({ c }) {
  return h('main', null, [
    h('h1', null, 'Events'),
    h(
      'ol',
      { reversed: true, id: 'timeline' },
      c.events
        .slice(-200)
        .reverse()
        .map((e) =>
          h(
            'li',
            { 'data-kind': e.kind, 'data-name': e.name ?? e.id ?? e.machineID ?? '' },
            `${e.at.slice(11, 19)} ${e.kind} ${e.name ?? e.machineID ?? ''} ${e.currentState ?? e.desiredState ?? ''}`,
          ),
        ),
    ),
  ]);
}

function App() {
  const [session, setSession] = useState(undefined);
  const [checked, setChecked] = useState(false);
  const [theme, setTheme] = useState(
    localStorage.getItem('flotilla.theme') ??
      (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'),
  );
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem('flotilla.theme', theme);
  }, [theme]);
  useEffect(
    () =>
      void getSession()
        .then(setSession)
        .finally(() => setChecked(true)),
    [],
  );
  const route = useRoute();
  if (!checked) return null;
  if (!session) return h(Login, { onIn: setSession });
  return h(Shell, { session, route, theme, setTheme, onLoggedOut: () => setSession(undefined) });
}

function Shell({ session, route, theme, setTheme, onLoggedOut }) {
  const c = useCluster(onLoggedOut);
  const [page, arg] = route;
  const body =
    page === 'units'
      ? h(Units, { c })
      : page === 'unit'
        ? h(Unit, { name: arg, c, session, onLoggedOut })
        : page === 'submit'
          ? h(Submit, { onLoggedOut })
          : page === 'events'
            ? h(Events, { c })
            : page === 'machine'
              ? h(Units, { c: { ...c, units: c.units.filter((u) => u.machineID === arg) } })
              : page === 'updates'
                ? h('main', null, [
                    h('h1', null, 'Updates and reboots'),
                    h('p', null, 'not available on this agent'),
                  ])
                : h(Overview, { c });
  return h('div', null, [
    h(Nav, { page, session, theme, setTheme }),
    c.ready ? body : h('p', null, 'Loading…'),
  ]);
}

render(h(App), document.getElementById('app'));
