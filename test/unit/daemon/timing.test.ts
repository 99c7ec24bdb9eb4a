/** The agent's timings from agent_ttl and friends (src/daemon/timing.ts): pure. */
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../../src/daemon/config.js';
import { agentTiming } from '../../../src/daemon/timing.js';

describe('agentTiming', () => {
  it('derives everything from the defaults (agent_ttl 30 s, engine interval 2 s)', () => {
    expect(agentTiming(DEFAULTS, true)).toEqual({
      leaseTtlS: 30,
      livenessTimeoutMs: 20_000,
      livenessIntervalMs: 5_000,
      fenceTtlMs: 14_750,
      monitorTtlMs: 30_000,
      resyncMs: 10_000,
      engineIntervalMs: 2_000,
    });
  });

  it('fences after agent_ttl when no liveness responder is registered', () => {
    const t = agentTiming({ agentTtl: 30, engineReconcileInterval: 2 }, false);
    expect(t.fenceTtlMs).toBe(30_000);
    expect(t.livenessTimeoutMs).toBe(20_000);
  });

  it('with liveness, fences before peers would evict: timeout less one probe interval and slack', () => {
    for (const agentTtl of [1, 3, 5, 10, 30, 120]) {
      const t = agentTiming({ agentTtl, engineReconcileInterval: 1 }, true);
      expect(t.fenceTtlMs).toBeLessThanOrEqual(Math.max(500, t.livenessTimeoutMs - t.livenessIntervalMs));
      expect(t.fenceTtlMs).toBeGreaterThanOrEqual(500);
      expect(t.fenceTtlMs).toBeLessThan(agentTtl * 1000);
    }
  });

  it('takes liveness_timeout when set', () => {
    const t = agentTiming({ agentTtl: 10, livenessTimeout: 2, engineReconcileInterval: 1 }, true);
    expect(t.livenessTimeoutMs).toBe(2_000);
    expect(t.livenessIntervalMs).toBe(500);
    expect(t.fenceTtlMs).toBe(1_250);
    expect(t.monitorTtlMs).toBe(10_000);
  });

  it('keeps the floors: lease at least 1 s, probes at least 100 ms apart, fence at least 500 ms, resync at least 5 s', () => {
    const t = agentTiming({ agentTtl: 0.3, engineReconcileInterval: 0.1 }, true);
    expect(t.leaseTtlS).toBe(1);
    expect(t.livenessIntervalMs).toBe(100);
    expect(t.fenceTtlMs).toBe(500);
    expect(t.resyncMs).toBe(5_000);
    expect(t.engineIntervalMs).toBe(100);
    expect(agentTiming({ agentTtl: 2.4, engineReconcileInterval: 3 }, false).leaseTtlS).toBe(2);
  });
});
