/** Small statistics helpers for benchmarks. Times are in milliseconds. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function summarize(samples: number[]): {
  n: number;
  p50: number;
  p99: number;
  min: number;
  max: number;
  mean: number;
} {
  const s = [...samples].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return {
    n: s.length,
    p50: percentile(s, 50),
    p99: percentile(s, 99),
    min: s[0] ?? NaN,
    max: s[s.length - 1] ?? NaN,
    mean,
  };
}

export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** The median (NaN for no samples). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

/** The `n, min, median, max` cells of a table row ('0' and blanks for no samples). */
export function nMinMedianMax(xs: readonly number[]): (string | number)[] {
  return xs.length === 0
    ? ['0', '', '', '']
    : [String(xs.length), Math.min(...xs), median(xs), Math.max(...xs)];
}

/** The columns of the real-cluster tables: a measure, nMinMedianMax's cells, the unit, fleet's figure. */
export const REAL_CLUSTER_HEADER = [
  'measure (3 nspawn machines, agent_ttl=3s)',
  'n',
  'min',
  'median',
  'max',
  'unit',
  'fleet v1.0',
];
