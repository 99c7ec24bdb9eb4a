// Units: the table (filter, sort, live), and one unit's page (file, status, journal follow, actions).
import { Component, h } from 'preact';
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
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
    return next.r !== this.props.r || next.i !== this.props.i;
  }
  render({ r, i }) {
    return h('tr', { 'data-unit': r.name, 'aria-rowindex': i + 2 }, [
      h('td', null, h('a', { href: `#/unit/${r.name}` }, r.name)),
      h('td', { 'data-col': 'machine' }, r.machine),
      h('td', { 'data-col': 'desired' }, r.desired),
      h('td', { 'data-col': 'current' }, r.current),
      h('td', { 'data-col': 'active' }, r.active),
    ]);
  }
}

const OVERSCAN = 15; // rows rendered above and below the visible ones

/**
 * The table, virtualised: every unit is in the sorted, filtered list, but only the rows in view (plus
 * OVERSCAN) are in the DOM, between two spacer rows that keep the scroll height; so the first paint
 * and each live update cost O(rows in view), not O(units).
 */
export function UnitsTable({ s, only }) {
  const [q, setQ] = useState('');
  const [sort, setSort] = useState(['name', 1]);
  const [top, setTop] = useState(0);
  const [viewH, setViewH] = useState(800);
  const [rowH, setRowH] = useState(28);
  const box = useRef(null);
  const v = s.version;
  const rows = useMemo(() => {
    const units = [...s.units.values()].filter((u) => !only || only(u));
    const r = units
      .map((u) => unitRow(s, u))
      .filter((x) => !q || Object.values(x).some((val) => String(val).includes(q)));
    const [k, d] = sort;
    return r.sort((a, b) => (a[k] < b[k] ? -d : a[k] > b[k] ? d : 0));
  }, [v, q, sort, only]);
  useEffect(() => {
    const on = () => box.current && setViewH(box.current.clientHeight || 800);
    on();
    addEventListener('resize', on);
    return () => removeEventListener('resize', on);
  }, []);
  useLayoutEffect(() => {
    const tr = box.current?.querySelector('tbody tr[data-unit]');
    if (tr && tr.offsetHeight > 0 && tr.offsetHeight !== rowH) setRowH(tr.offsetHeight);
  });
  const first = Math.max(0, Math.floor(top / rowH) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((top + viewH) / rowH) + OVERSCAN);
  const spacer = (n, key) =>
    n > 0 &&
    h(
      'tr',
      { key, class: 'spacer', 'aria-hidden': 'true', style: { height: `${n * rowH}px` } },
      h('td', { colSpan: COLS.length }),
    );
  return h('div', null, [
    h('label', null, ['Filter ', h('input', { value: q, onInput: (e) => setQ(e.currentTarget.value) })]),
    h(
      'div',
      {
        class: 'scroll',
        ref: box,
        tabIndex: 0,
        role: 'region',
        'aria-label': `units table, ${rows.length} rows`,
        onScroll: (e) => setTop(e.currentTarget.scrollTop),
      },
      h('table', { id: 'units', 'aria-rowcount': rows.length + 1 }, [
        h(
          'thead',
          null,
          h(
            'tr',
            { 'aria-rowindex': 1 },
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
        h('tbody', null, [
          spacer(first, 'top'),
          ...rows.slice(first, last).map((r, j) => h(Row, { key: r.name, r, i: first + j })),
          spacer(rows.length - last, 'bottom'),
        ]),
      ]),
    ),
  ]);
}

export function Units({ s }) {
  return h('main', null, [h('h1', null, `Units (${s.units.size})`), h(UnitsTable, { s })]);
}

export function Unit({ name, s, session, onLoggedOut }) {
  const [status, setStatus] = useState('');
  const [journal, setJournal] = useState([]);
  const [msg, setMsg] = useState('');
  const [file, setFile] = useState(undefined); // the unit file (the snapshot carries no options)
  const u = s.units.get(name);
  useEffect(() => {
    if (!u) return;
    api(`/fleet/v1/units/${encodeURIComponent(name)}`).then(
      (r) => setFile(r.options ?? []),
      (e) => (e instanceof LoggedOut ? onLoggedOut() : setFile(undefined)),
    );
  }, [name, u?.hash]);
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
    u && file && h('pre', null, file.map((o) => `[${o.section}] ${o.name}=${o.value}`).join('\n')),
    h('h2', null, 'systemctl status'),
    h('pre', null, status),
    h('h2', null, 'Journal (follow)'),
    h('pre', { id: 'journal', 'aria-live': 'polite', tabIndex: 0 }, journal.join('\n')),
  ]);
}
