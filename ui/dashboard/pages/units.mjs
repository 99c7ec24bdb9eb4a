// Units: the table (filter, sort, live), and one unit's page (file, status, journal follow, actions).
import { Component, h } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { LoggedOut, api, follow } from '../api.mjs';
import { unitRow } from '../format.mjs';

const COLS = [
  ['name', 'Unit'],
  ['machine', 'Machine'],
  ['desired', 'Desired'],
  ['current', 'Current'],
  ['active', 'Active/sub'],
];

/** One row; re-rendered only when its row object changes (2,500 rows stay cheap). */
class Row extends Component {
  shouldComponentUpdate(next) {
    return next.r !== this.props.r;
  }
  render({ r }) {
    return h('tr', { 'data-unit': r.name }, [
      h('td', null, h('a', { href: `#/unit/${r.name}` }, r.name)),
      h('td', { 'data-col': 'machine' }, r.machine),
      h('td', { 'data-col': 'desired' }, r.desired),
      h('td', { 'data-col': 'current' }, r.current),
      h('td', { 'data-col': 'active' }, r.active),
    ]);
  }
}

export function UnitsTable({ s, only }) {
  const [q, setQ] = useState('');
  const [sort, setSort] = useState(['name', 1]);
  const v = s.version;
  const rows = useMemo(() => {
    const units = [...s.units.values()].filter((u) => !only || only(u));
    const r = units
      .map((u) => unitRow(s, u))
      .filter((x) => !q || Object.values(x).some((val) => String(val).includes(q)));
    const [k, d] = sort;
    return r.sort((a, b) => (a[k] < b[k] ? -d : a[k] > b[k] ? d : 0));
  }, [v, q, sort, only]);
  return h('div', null, [
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
        rows.map((r) => h(Row, { key: r.name, r })),
      ),
    ]),
  ]);
}

export function Units({ s }) {
  return h('main', null, [h('h1', null, `Units (${s.units.size})`), h(UnitsTable, { s })]);
}

export function Unit({ name, s, session, onLoggedOut }) {
  const [status, setStatus] = useState('');
  const [journal, setJournal] = useState([]);
  const [msg, setMsg] = useState('');
  const u = s.units.get(name);
  useEffect(() => {
    const ac = new AbortController();
    const lines = [];
    api(`/flotilla/v1/units/${encodeURIComponent(name)}/status?lines=10`).then(
      (r) => setStatus(typeof r === 'object' ? r.output : String(r)),
      (e) => setStatus(e.message),
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
    h('pre', { id: 'journal', 'aria-live': 'polite', tabIndex: 0 }, journal.join('\n')),
  ]);
}
