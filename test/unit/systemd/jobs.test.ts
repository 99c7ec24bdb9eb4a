import { describe, expect, it } from 'vitest';
import { JobTracker, inferResult } from '../../../src/systemd/jobs.js';
import { emptyState } from '../../../src/systemd/properties.js';

describe('JobTracker', () => {
  it('settles a waiter on JobRemoved', async () => {
    const t = new JobTracker();
    const p = t.wait('/job/1', 'a.service', 1000);
    t.removed('/job/1', 'done');
    await expect(p).resolves.toEqual({ result: 'done', inferred: false, clientTimeout: false });
  });

  it('keeps a JobRemoved that arrives before the wait (same socket read as the reply)', async () => {
    const t = new JobTracker();
    t.removed('/job/2', 'failed');
    await expect(t.wait('/job/2', 'a.service', 1000)).resolves.toMatchObject({ result: 'failed' });
  });

  it('bounds the results nobody waited for', async () => {
    const t = new JobTracker(2);
    t.removed('/job/1', 'done');
    t.removed('/job/2', 'done');
    t.removed('/job/3', 'done');
    const p = t.wait('/job/1', 'a.service', 20);
    await expect(p).resolves.toMatchObject({ result: 'timeout', clientTimeout: true });
  });

  it('settles with an inferred result and fails everything on failAll', async () => {
    const t = new JobTracker();
    const a = t.wait('/job/1', 'a.service', 1000);
    const b = t.wait('/job/2', 'b.service', 1000);
    expect(t.pending()).toEqual([
      ['/job/1', 'a.service'],
      ['/job/2', 'b.service'],
    ]);
    t.settle('/job/1', 'done');
    await expect(a).resolves.toEqual({ result: 'done', inferred: true, clientTimeout: false });
    t.failAll(new Error('closed'));
    await expect(b).rejects.toThrow('closed');
  });
});

describe('inferResult', () => {
  const s = (activeState: string, result = 'success') =>
    ({ ...emptyState('a.service'), activeState, result }) as ReturnType<typeof emptyState>;
  it('judges start and stop from the unit state', () => {
    expect(inferResult('start', s('active'))).toBe('done');
    expect(inferResult('start', s('inactive'))).toBe('done');
    expect(inferResult('start', s('inactive', 'exit-code'))).toBe('failed');
    expect(inferResult('restart', s('failed', 'exec'))).toBe('failed');
    expect(inferResult('stop', s('inactive'))).toBe('done');
    expect(inferResult('stop', s('failed'))).toBe('done');
    expect(inferResult('stop', s('active'))).toBe('failed');
  });
});
