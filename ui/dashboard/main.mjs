// flotilla dashboard: Preact (no JSX, no build-time magic), hash routes, live from /flotilla/v1/events.
// Pages live in pages/*.mjs; the cluster state in store.mjs.
import { h, render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { getSession, login } from './api.mjs';
import { Events } from './pages/events.mjs';
import { Machine, Machines } from './pages/machines.mjs';
import { Overview } from './pages/overview.mjs';
import { Services } from './pages/services.mjs';
import { Submit } from './pages/submit.mjs';
import { Terminal } from './pages/terminal.mjs';
import { Unit, Units } from './pages/units.mjs';
import { Store, useStore } from './store.mjs';
import './style.css';

function useRoute() {
  const [hash, setHash] = useState(location.hash || '#/overview');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/overview');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash.slice(2).split('/').map(decodeURIComponent);
}

function Login({ onIn, expired }) {
  const [err, setErr] = useState('');
  useEffect(() => {
    const m = /token=([A-Za-z0-9_-]+)/.exec(location.hash);
    if (!m) return;
    history.replaceState(null, '', '/ui/#/overview'); // the token leaves the address bar at once
    login(m[1]).then(onIn, (e) => setErr(e.message));
  }, []);
  return h('main', { class: 'login' }, [
    h('h1', null, 'flotilla'),
    expired &&
      h(
        'p',
        { role: 'status' },
        'Your session ended. Log in again: a half-typed unit is kept and comes back on the Submit page.',
      ),
    h('p', null, 'Log in with the URL printed by `flotilla dashboard login-url` on a machine.'),
    err && h('p', { role: 'alert', class: 'error' }, err),
  ]);
}

const NAV = [
  ['overview', 'Overview'],
  ['units', 'Units'],
  ['machines', 'Machines'],
  ['services', 'Services'],
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

function App() {
  const [session, setSession] = useState(undefined);
  const [expired, setExpired] = useState(false);
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
  if (!session) return h(Login, { onIn: setSession, expired });
  return h(Shell, {
    session,
    route,
    theme,
    setTheme,
    onLoggedOut: () => (setExpired(true), setSession(undefined)),
  });
}

function Shell({ session, route, theme, setTheme, onLoggedOut }) {
  const store = useMemo(() => new Store(), []);
  useEffect(() => {
    const ac = new AbortController();
    void store.run(ac.signal, onLoggedOut);
    return () => ac.abort();
  }, [store]);
  const s = useStore(store);
  const [page, arg] = route;
  const p = { s, session, onLoggedOut };
  const body =
    page === 'units'
      ? h(Units, p)
      : page === 'unit'
        ? h(Unit, { ...p, name: arg })
        : page === 'submit'
          ? h(Submit, p)
          : page === 'events'
            ? h(Events, p)
            : page === 'machines'
              ? h(Machines, p)
              : page === 'machine'
                ? h(Machine, { ...p, id: arg })
                : page === 'terminal'
                  ? h(Terminal, { ...p, id: arg })
                  : page === 'services'
                    ? h(Services, p)
                    : page === 'updates'
                      ? h('main', null, [
                          h('h1', null, 'Updates and reboots'),
                          h('p', null, 'not available on this agent'),
                        ])
                      : h(Overview, p);
  return h('div', null, [
    h(Nav, { page, session, theme, setTheme }),
    s.ready || page === 'submit' ? body : h('p', null, 'Loading…'),
  ]);
}

render(h(App), document.getElementById('app'));
