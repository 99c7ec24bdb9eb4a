// Terminal: a shell on a machine over a WebSocket (/ui/terminal/ID; the agent hosts or forwards it).
// A line-oriented console, not a terminal emulator: escape sequences are dropped from the output,
// a typed line is sent with Enter; Ctrl-C and Ctrl-D have buttons.
import { h } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { machineLabel } from '../format.mjs';

const MAX_OUTPUT = 200_000;
// CSI/OSC/other escape sequences, and the bell.
// eslint-disable-next-line no-control-regex
const ESC = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][0-9A-B]|\x1b[=>78cDEHM]|\x07/g;

/** Terminal output → plain text (escape sequences dropped, CR LF → LF, backspace applied). */
export function plain(text) {
  let t = text.replace(ESC, '').replace(/\r\n/g, '\n').replace(/\r/g, '');
  while (/[^\n]\x08/.test(t)) t = t.replace(/[^\n]\x08/, '');
  return t.replace(/\x08/g, '');
}

export function Terminal({ id, s, session }) {
  const [out, setOut] = useState('');
  const [state, setState] = useState('connecting');
  const [line, setLine] = useState('');
  const ws = useRef(undefined);
  const m = s.machines.find((x) => x.id === id);
  useEffect(() => {
    if (session.role !== 'operator' || !session.terminal) return;
    const sock = new WebSocket(
      `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ui/terminal/${id}`,
    );
    ws.current = sock;
    let buf = '';
    sock.onopen = () => {
      setState('open');
      sock.send(JSON.stringify({ type: 'resize', cols: 100, rows: 30 }));
    };
    sock.onmessage = (e) => {
      buf = (buf + plain(String(e.data))).slice(-MAX_OUTPUT);
      setOut(buf);
    };
    sock.onclose = (e) =>
      setState(
        e.code === 1000 || e.code === 1005
          ? `closed${e.reason ? `: ${e.reason}` : ''}`
          : `closed (${e.code}): ${e.reason || 'the connection was refused or lost'}`,
      );
    return () => sock.close();
  }, [id]);
  const send = (data) =>
    ws.current?.readyState === 1 && ws.current.send(JSON.stringify({ type: 'input', data }));
  const title = `Terminal on ${m ? machineLabel(m) : id.slice(0, 12)}`;
  if (session.role !== 'operator')
    return h('main', null, [
      h('h1', null, title),
      h('p', { role: 'alert' }, 'The terminal needs the operator role.'),
    ]);
  if (!session.terminal)
    return h('main', null, [
      h('h1', null, title),
      h('p', { role: 'alert' }, 'The terminal is off on this dashboard (dashboard_terminal=false).'),
    ]);
  return h('main', null, [
    h('h1', null, title),
    !m && h('p', { role: 'status' }, 'This machine is not in the cluster right now.'),
    h('p', { role: state.startsWith('closed') ? 'alert' : 'status', id: 'term-state' }, state),
    h('pre', { id: 'terminal', class: 'terminal', tabIndex: 0, 'aria-label': 'terminal output' }, out),
    h(
      'form',
      {
        class: 'inline',
        onSubmit: (e) => {
          e.preventDefault();
          send(`${line}\r`);
          setLine('');
        },
      },
      [
        h('label', null, [
          'Command ',
          h('input', {
            value: line,
            autocomplete: 'off',
            disabled: state !== 'open',
            onInput: (e) => setLine(e.currentTarget.value),
          }),
        ]),
        h('button', { type: 'submit', disabled: state !== 'open' }, 'Send'),
        h('button', { type: 'button', disabled: state !== 'open', onClick: () => send('\x03') }, 'Ctrl-C'),
        h('button', { type: 'button', disabled: state !== 'open', onClick: () => send('\x04') }, 'Ctrl-D'),
      ],
    ),
  ]);
}
