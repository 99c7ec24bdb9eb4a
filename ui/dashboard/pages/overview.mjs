// Overview: machines (metadata, IP, units, leader), units by state, units that cannot be placed.
import { h } from 'preact';
import { machineLabel } from '../format.mjs';

export function Overview({ s }) {
  const counts = s.counts();
  const units = [...s.units.values()];
  const unplaced = units.filter((u) => u.desiredState !== 'inactive' && !u.machineID);
  const reasons = new Map();
  for (const e of s.events) if (e.kind === 'schedule' && e.reason) reasons.set(e.name, e.reason);
  return h('main', null, [
    h('h1', null, 'Overview'),
    h('h2', null, `Machines (${s.machines.length})`),
    h('table', null, [
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          ['Machine', 'IP', 'Metadata', 'Units', 'Role'].map((t) => h('th', { scope: 'col' }, t)),
        ),
      ),
      h(
        'tbody',
        null,
        s.machines.map((m) =>
          h('tr', { key: m.id, 'data-machine': m.id }, [
            h('td', null, h('a', { href: `#/machine/${m.id}` }, machineLabel(m))),
            h('td', null, m.primaryIP),
            h(
              'td',
              null,
              Object.entries(m.metadata ?? {})
                .map(([k, v]) => `${k}=${v}`)
                .join(', '),
            ),
            h('td', null, String(units.filter((u) => u.machineID === m.id).length)),
            h('td', null, s.leader === m.id ? 'engine leader' : ''),
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
      unplaced.map((u) =>
        h('li', null, [
          h('a', { href: `#/unit/${u.name}` }, u.name),
          reasons.get(u.name) ? `: ${reasons.get(u.name)}` : '',
        ]),
      ),
    ),
  ]);
}
