/**
 * Where a bulk start or destroy spends its time (`cluster-real --trace`): the agents' own journal
 * lines, read from each machine after the run, on the host's CLOCK_MONOTONIC (the machines share the
 * host's kernel, so journald's __MONOTONIC_TIMESTAMP and `monoNowUs()` on the host are one clock).
 *
 * Per machine: the first and last line of each kind the agent logs at info (`schedule X: …` from the
 * engine leader, `install …`, `load …`, `start X`, `stop X`, `unload …`, `installed units`,
 * `uninstalled units`), as seconds since the first submit. The registry side (when 1 %, 50 %, 100 %
 * of the units showed active in the host's watch) comes from the caller.
 */
import { inMachine } from '../test/support/cluster.js';

export interface Span {
  kind: string;
  count: number;
  firstS: number;
  lastS: number;
}

/** The log message's first word(s) that mark one step of the pipeline. */
const KINDS: [string, RegExp][] = [
  ['engine: schedule decisions', /^schedule \S+:/],
  ['agent: install (file writes + link)', /^installed units/],
  ['agent: daemon-reload (load)', /^load /],
  ['agent: start jobs done', /^start \S/],
  ['agent: stop jobs done', /^stop \S/],
  ['agent: unload (stop + remove + reload)', /^uninstalled units/],
];

/** The agent's journal lines on machine `m` since host monotonic time `sinceUs`, as spans. */
export async function journalSpans(m: string, sinceUs: number, stem: string): Promise<Span[]> {
  const r = await inMachine(
    m,
    'journalctl',
    '-u',
    'flotilla',
    '-o',
    'json',
    '--since',
    '-900s',
    '--no-pager',
  );
  const spans = new Map<string, Span>();
  for (const line of r.stdout.split('\n')) {
    if (!line.includes(stem)) continue;
    let o: { MESSAGE?: unknown; __MONOTONIC_TIMESTAMP?: unknown };
    try {
      o = JSON.parse(line) as typeof o;
    } catch {
      continue;
    }
    const mono = Number(o.__MONOTONIC_TIMESTAMP);
    const msg = typeof o.MESSAGE === 'string' ? o.MESSAGE : '';
    if (!Number.isFinite(mono) || mono < sinceUs) continue;
    for (const [kind, re] of KINDS) {
      if (!re.test(msg)) continue;
      const s = (mono - sinceUs) / 1e6;
      const sp = spans.get(kind);
      if (!sp) spans.set(kind, { kind, count: 1, firstS: s, lastS: s });
      else {
        sp.count++;
        sp.lastS = Math.max(sp.lastS, s);
        sp.firstS = Math.min(sp.firstS, s);
      }
      break;
    }
  }
  return KINDS.map(([k]) => spans.get(k)).filter((s): s is Span => s !== undefined);
}

/** Print the spans of every machine (stderr), one line each. */
export function logSpans(log: (msg: string) => void, what: string, m: string, spans: readonly Span[]): void {
  for (const s of spans)
    log(
      `trace ${what} ${m}: ${s.kind}: ${s.count} lines, ${s.firstS.toFixed(2)} s → ${s.lastS.toFixed(2)} s`,
    );
}
