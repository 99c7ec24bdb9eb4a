// Submit a unit (or a template instance) from a form or a pasted file. Parse errors and the API's
// errors show in the form with the offending lines marked; an oversized paste is refused; the draft
// is kept in sessionStorage, so an expired session (back to login) loses nothing.
import { h } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { LoggedOut, api } from '../api.mjs';

const DRAFT = 'flotilla.draft';
export const MAX_UNIT_BYTES = 64 * 1024;

/** Unit file text → fleet options with their line numbers, or {error, line}. */
export function parseUnit(text) {
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
        line: i + 1,
      });
    else return { error: `line ${i + 1}: expected [Section] or Key=Value`, lines: [i + 1] };
  }
  return { options };
}

/** The lines an API error is about: the options it names (by key, or by a quoted value). */
export function linesNamed(message, options) {
  const out = [];
  for (const o of options) {
    const byName = new RegExp(`(^|[^A-Za-z])${o.name}([^A-Za-z]|$)`).test(message);
    const byValue = o.value.length > 1 && message.includes(`"${o.value}"`);
    if (byName || byValue) out.push(o.line);
  }
  return out;
}

function byteLength(s) {
  return new TextEncoder().encode(s).length;
}

export function Submit({ onLoggedOut }) {
  const draft = JSON.parse(sessionStorage.getItem(DRAFT) ?? '{}');
  const [name, setName] = useState(draft.name ?? '');
  const [text, setText] = useState(draft.text ?? '');
  const [err, setErr] = useState(undefined); // {message, lines}
  useEffect(() => sessionStorage.setItem(DRAFT, JSON.stringify({ name, text })), [name, text]);
  const onPaste = (e) => {
    const pasted = e.clipboardData?.getData('text') ?? '';
    if (byteLength(text) + byteLength(pasted) > MAX_UNIT_BYTES) {
      e.preventDefault();
      setErr({
        message: `paste refused: the unit file would be larger than ${MAX_UNIT_BYTES / 1024} KiB`,
        lines: [],
      });
    }
  };
  const submit = async (e) => {
    e.preventDefault();
    if (byteLength(text) > MAX_UNIT_BYTES)
      return setErr({
        message: `the unit file is larger than ${MAX_UNIT_BYTES / 1024} KiB: refused`,
        lines: [],
      });
    const parsed = parseUnit(text);
    if (parsed.error) return setErr({ message: parsed.error, lines: parsed.lines });
    try {
      await api(`/fleet/v1/units/${encodeURIComponent(name)}`, {
        method: 'PUT',
        body: {
          desiredState: 'launched',
          options: parsed.options.map(({ section, name: n, value }) => ({ section, name: n, value })),
        },
      });
      sessionStorage.removeItem(DRAFT);
      location.hash = `#/unit/${name}`;
    } catch (e2) {
      if (e2 instanceof LoggedOut) onLoggedOut();
      else setErr({ message: e2.message, lines: linesNamed(e2.message, parsed.options) });
    }
  };
  const bad = new Set(err?.lines ?? []);
  return h('main', null, [
    h('h1', null, 'Submit a unit'),
    h('form', { onSubmit: submit }, [
      h('label', null, [
        'Name ',
        h('input', { value: name, required: true, onInput: (e) => setName(e.currentTarget.value) }),
      ]),
      h('label', null, [
        'Unit file',
        h('textarea', {
          rows: 14,
          value: text,
          'aria-invalid': err ? 'true' : undefined,
          'aria-describedby': err ? 'submit-error' : undefined,
          onPaste,
          onInput: (e) => (setText(e.currentTarget.value), err && setErr(undefined)),
        }),
      ]),
      err && h('p', { role: 'alert', class: 'error', id: 'submit-error' }, err.message),
      err &&
        bad.size > 0 &&
        h(
          'ol',
          { class: 'listing', 'aria-label': 'Lines in error marked' },
          text
            .split('\n')
            .map((l, i) =>
              h(
                'li',
                bad.has(i + 1) ? { class: 'bad', 'data-line': i + 1 } : { 'data-line': i + 1 },
                bad.has(i + 1) ? h('mark', null, l || ' ') : l || ' ',
              ),
            ),
        ),
      h('button', { type: 'submit' }, 'Submit and start'),
    ]),
  ]);
}
