/**
 * src/lib/metrics.ts: observations made before prom-client is loaded are kept and replayed; the
 * registry store wrapper times every call into flotilla_registry_request_duration_seconds, by
 * operation and result, over a real embedded store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { countDecision, instrumentStore, metricsText, observeReconcile } from '../../../src/lib/metrics.js';
import { EmbeddedKvStore } from '../../../src/registry/embedded/index.js';

const series = (text: string, name: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
};

it('keeps what was recorded before prom-client was loaded', async () => {
  // Nothing in this file has loaded prom-client yet (vitest isolates modules per file).
  observeReconcile(12);
  observeReconcile(3000);
  countDecision('schedule');
  const text = (await metricsText()).text;
  expect(series(text, 'flotilla_agent_reconcile_duration_seconds_count')).toBe(2);
  expect(series(text, 'flotilla_agent_reconcile_duration_seconds_sum')).toBeCloseTo(3.012, 6);
  expect(series(text, 'flotilla_agent_reconcile_duration_seconds_bucket{le="0.025"}')).toBe(1);
  expect(series(text, 'flotilla_engine_scheduling_decisions_total{kind="schedule"}')).toBe(1);
});

it('times every registry call of a wrapped store, ok and error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-metrics-'));
  const raw = await EmbeddedKvStore.open({ dataDir: dir });
  const store = instrumentStore(raw);
  try {
    expect(store.backend).toBe('embedded');
    await store.put('k', 'v');
    expect((await store.get('k'))?.value).toBe('v');
    await store.txn({ compare: [], success: [] });
    await store.range('');
    const w = store.watch(''); // passes through untimed
    w.close();
  } finally {
    await store.close();
  }
  await expect(store.get('k')).rejects.toThrow();
  const text = (await metricsText()).text;
  const count = (op: string, result: string) =>
    series(text, `flotilla_registry_request_duration_seconds_count{op="${op}",result="${result}"}`);
  expect(count('put', 'ok')).toBe(1);
  expect(count('get', 'ok')).toBe(1);
  expect(count('txn', 'ok')).toBe(1);
  expect(count('range', 'ok')).toBe(1);
  expect(count('get', 'error')).toBe(1);
  expect(text).not.toContain('op="watch"');
  rmSync(dir, { recursive: true, force: true });
});
