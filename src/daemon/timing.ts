/**
 * The agent's timings, all derived from `agent_ttl` (and `liveness_timeout`,
 * `engine_reconcile_interval`): one pure function, so the relations between them are written once
 * and tested (test/unit/daemon/timing.test.ts).
 *
 *   leaseTtlS           the presence lease's TTL: agent_ttl, whole seconds, at least 1.
 *   livenessTimeoutMs   peers evict a machine silent this long (liveness.ts): liveness_timeout,
 *                       default 2/3 of agent_ttl.
 *   livenessIntervalMs  how often peers are probed: a quarter of the timeout, at least 100 ms.
 *   fenceTtlMs          a machine whose lease was last confirmed longer ago fences itself
 *                       (fence.ts). With liveness probing, peers evict a silent machine after
 *                       livenessTimeout, so it must fence before that: the timeout less one probe
 *                       interval and 250 ms of slack (at least 500 ms). Without it: agent_ttl.
 *   monitorTtlMs        the liveness monitor's own-lease guard: agent_ttl.
 *   resyncMs            the machine agent's full resync: 5 engine intervals, at least 5 s, at most 60 s.
 *   engineIntervalMs    the engine's reconcile interval.
 */
export interface TimingConfig {
  /** agent_ttl, seconds. */
  agentTtl: number;
  /** liveness_timeout, seconds; default 2/3 of agent_ttl. */
  livenessTimeout?: number | undefined;
  /** engine_reconcile_interval, seconds. */
  engineReconcileInterval: number;
}

export interface AgentTiming {
  leaseTtlS: number;
  livenessTimeoutMs: number;
  livenessIntervalMs: number;
  fenceTtlMs: number;
  monitorTtlMs: number;
  resyncMs: number;
  engineIntervalMs: number;
}

/** `liveness`: is this machine's liveness responder registered (peers probe it)? */
export function agentTiming(c: TimingConfig, liveness: boolean): AgentTiming {
  const livenessTimeoutMs = (c.livenessTimeout ?? (c.agentTtl * 2) / 3) * 1000;
  const livenessIntervalMs = Math.max(100, livenessTimeoutMs / 4);
  return {
    leaseTtlS: Math.max(1, Math.round(c.agentTtl)),
    livenessTimeoutMs,
    livenessIntervalMs,
    fenceTtlMs: liveness ? Math.max(500, livenessTimeoutMs - livenessIntervalMs - 250) : c.agentTtl * 1000,
    monitorTtlMs: c.agentTtl * 1000,
    resyncMs: Math.min(60_000, Math.max(5000, c.engineReconcileInterval * 5000)),
    engineIntervalMs: c.engineReconcileInterval * 1000,
  };
}
