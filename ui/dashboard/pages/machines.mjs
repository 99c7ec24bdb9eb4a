// Machines: one machine's units, and its metadata, editable by an operator (PATCH /fleet/v1/machines).
import { h } from 'preact';
import { useState } from 'preact/hooks';
import { LoggedOut, api } from '../api.mjs';
import { machineLabel } from '../format.mjs';
import { UnitsTable } from './units.mjs';

const KEY_RE = /^[A-Za-z0-9_.-]+$/;

export function Machine({ id, s, session, onLoggedOut }) {
  const m = s.machines.find((x) => x.id === id);
  const [key, setKey] = useState('');
  const [value, setValue] = useState('');
  const [msg, setMsg] = useState(undefined); // {text, error}
  const op = session.role === 'operator';
  const patch = async (ops, done) => {
    try {
      await api('/fleet/v1/machines', { method: 'PATCH', body: ops });
      setMsg({ text: done });
    } catch (e) {
      if (e instanceof LoggedOut) onLoggedOut();
      else setMsg({ text: e.message, error: true });
    }
  };
  const add = (e) => {
    e.preventDefault();
    if (!KEY_RE.test(key)) return setMsg({ text: 'key: letters, digits, _ . - only', error: true });
    if (!value) return setMsg({ text: 'value: required', error: true });
    const kind = m?.metadata && key in m.metadata ? 'replace' : 'add';
    void patch(
      [{ op: kind, path: `/${id}/metadata/${key}`, value: { value } }],
      `${key}=${value}: saved`,
    ).then(() => (setKey(''), setValue('')));
  };
  return h('main', null, [
    h('h1', null, m ? `Machine ${machineLabel(m)}` : `Machine ${id.slice(0, 12)}`),
    !m && h('p', { role: 'status' }, 'This machine is not in the cluster (down or gone).'),
    m && h('p', null, `ID ${m.id}, IP ${m.primaryIP}${s.leader === m.id ? ', engine leader' : ''}`),
    h('h2', null, 'Metadata'),
    h('table', { id: 'metadata' }, [
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          ['Key', 'Value', ''].map((t) => h('th', { scope: 'col' }, t)),
        ),
      ),
      h(
        'tbody',
        null,
        Object.entries(m?.metadata ?? {}).map(([k, v]) =>
          h('tr', { 'data-key': k }, [
            h('td', null, k),
            h('td', null, v),
            h(
              'td',
              null,
              h(
                'button',
                {
                  disabled: !op,
                  'aria-label': `Remove ${k}`,
                  onClick: () =>
                    confirm(`Remove metadata ${k} from this machine?`) &&
                    void patch([{ op: 'remove', path: `/${id}/metadata/${k}` }], `${k}: removed`),
                },
                'Remove',
              ),
            ),
          ]),
        ),
      ),
    ]),
    h('form', { onSubmit: add, class: 'inline' }, [
      h('label', null, [
        'Key ',
        h('input', { value: key, disabled: !op, onInput: (e) => setKey(e.currentTarget.value) }),
      ]),
      h('label', null, [
        'Value ',
        h('input', { value, disabled: !op, onInput: (e) => setValue(e.currentTarget.value) }),
      ]),
      h('button', { type: 'submit', disabled: !op }, 'Set'),
    ]),
    msg && h('p', { role: msg.error ? 'alert' : 'status', class: msg.error ? 'error' : '' }, msg.text),
    h('h2', null, 'Units on this machine'),
    h(UnitsTable, { s, only: (u) => u.machineID === id }),
    op && h('p', null, h('a', { href: `#/terminal/${id}` }, 'Open a terminal on this machine')),
  ]);
}

export function Machines({ s }) {
  return h('main', null, [
    h('h1', null, `Machines (${s.machines.length})`),
    h(
      'ul',
      null,
      s.machines.map((m) =>
        h('li', null, h('a', { href: `#/machine/${m.id}` }, `${machineLabel(m)} ${m.primaryIP}`)),
      ),
    ),
  ]);
}
