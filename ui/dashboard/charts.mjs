// Small inline SVG charts (no chart library): lines of units per state over time, and bars of
// failover durations. Each has a text alternative (a table) for screen readers.
import { h } from 'preact';

const W = 600;
const H = 140;
const PAD = 24;
const COLORS = ['#2e7d32', '#1565c0', '#ef6c00', '#6a1b9a', '#c62828', '#00838f', '#9e9d24'];

/** samples: [{at, counts: {state: n}}] → one polyline per state. */
export function StateChart({ samples }) {
  if (samples.length < 1) return h('p', null, 'No samples yet.');
  const states = [...new Set(samples.flatMap((x) => Object.keys(x.counts)))].sort();
  const t0 = samples[0].at;
  const t1 = Math.max(samples[samples.length - 1].at, t0 + 1);
  const max = Math.max(1, ...samples.flatMap((x) => Object.values(x.counts)));
  const X = (t) => PAD + ((t - t0) / (t1 - t0)) * (W - 2 * PAD);
  const Y = (n) => H - PAD - (n / max) * (H - 2 * PAD);
  const last = samples[samples.length - 1].counts;
  return h('figure', null, [
    h('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'states-cap', class: 'chart' }, [
      h('line', { x1: PAD, y1: H - PAD, x2: W - PAD, y2: H - PAD, class: 'axis' }),
      h('text', { x: 2, y: PAD, class: 'tick' }, String(max)),
      h('text', { x: 2, y: H - PAD, class: 'tick' }, '0'),
      ...states.map((st, i) =>
        h('polyline', {
          fill: 'none',
          stroke: COLORS[i % COLORS.length],
          'stroke-width': 2,
          'data-state': st,
          points: samples.map((x) => `${X(x.at).toFixed(1)},${Y(x.counts[st] ?? 0).toFixed(1)}`).join(' '),
        }),
      ),
    ]),
    h('figcaption', { id: 'states-cap' }, [
      `Units per state over the last ${t1 - t0 < 120_000 ? `${Math.round((t1 - t0) / 1000)} s` : `${Math.round((t1 - t0) / 60000)} min`}: `,
      ...states.map((st, i) =>
        h('span', { class: 'key', style: `--c:${COLORS[i % COLORS.length]}` }, ` ${st} ${last[st] ?? 0}`),
      ),
    ]),
  ]);
}

/** failovers: [{name, from, to, at, ms}] → one bar per failover, height = duration. */
export function FailoverChart({ failovers }) {
  if (failovers.length === 0) return h('p', null, 'No failovers seen since this page was opened.');
  const list = failovers.slice(-40);
  const max = Math.max(1, ...list.map((f) => f.ms));
  const bw = (W - 2 * PAD) / list.length;
  return h('figure', null, [
    h('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'fo-cap', class: 'chart' }, [
      h('line', { x1: PAD, y1: H - PAD, x2: W - PAD, y2: H - PAD, class: 'axis' }),
      h('text', { x: 2, y: PAD, class: 'tick' }, `${(max / 1000).toFixed(1)}s`),
      ...list.map((f, i) => {
        const bh = (f.ms / max) * (H - 2 * PAD);
        return h(
          'rect',
          {
            x: PAD + i * bw + 1,
            y: H - PAD - bh,
            width: Math.max(1, bw - 2),
            height: bh,
            class: 'bar',
            'data-unit': f.name,
          },
          h('title', null, `${f.name}: ${(f.ms / 1000).toFixed(1)} s`),
        );
      }),
    ]),
    h(
      'figcaption',
      { id: 'fo-cap' },
      `Failovers (${list.length}): time from the machine leaving to the unit placed again`,
    ),
    h('table', { class: 'compact' }, [
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          ['Unit', 'From', 'To', 'Duration'].map((t) => h('th', { scope: 'col' }, t)),
        ),
      ),
      h(
        'tbody',
        null,
        list.map((f) =>
          h('tr', { 'data-failover': f.name }, [
            h('td', null, f.name),
            h('td', null, f.from.slice(0, 8)),
            h('td', null, f.to.slice(0, 8)),
            h('td', null, `${(f.ms / 1000).toFixed(1)} s`),
          ]),
        ),
      ),
    ]),
  ]);
}
