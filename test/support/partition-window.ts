/**
 * A partition of one machine, measured on one clock: the machines share the host's CLOCK_MONOTONIC,
 * so systemd's ActiveEnter/ActiveExit timestamps in different machines compare directly with the
 * host's time of the cut. Shared by the partition test (cluster-failover) and
 * `npm run bench -- cluster-real --only partition`, so the test's bound and the bench's figure are the
 * same measurement.
 */
import { monoNowUs, sleep, stopStartedUs, unitsTimes, waitFor } from './cluster.js';
import { partition } from './testbed.js';

export interface MovedCopy {
  /** The machine the new copy is active on. */
  m: string;
  /** Its ActiveEnterTimestampMonotonic (µs). */
  enterUs: number;
  pid: number;
}

/** Wait until each unit is active on one of `survivors`; returns unit → the new copy. */
export async function waitMoved(
  units: readonly string[],
  survivors: readonly string[],
  timeoutMs: number,
): Promise<Map<string, MovedCopy>> {
  const moved = new Map<string, MovedCopy>();
  await waitFor(
    `${units.join(', ')} active on ${survivors.join(' or ')}`,
    async () => {
      for (const m of survivors) {
        const pending = units.filter((u) => !moved.has(u));
        if (pending.length === 0) break;
        const times = await unitsTimes(m, pending);
        pending.forEach((u, i) => {
          const t = times[i]!;
          if (t.activeState === 'active') moved.set(u, { m, enterUs: t.activeEnterUs, pid: t.mainPid });
        });
      }
      return moved.size === units.length;
    },
    timeoutMs,
    100,
  );
  return moved;
}

export interface PartitionedUnit {
  unit: string;
  /** Where the new copy runs, and µs from the cut until it was active. */
  newOn: string;
  newPid: number;
  newAfterUs: number;
  /** µs from the cut until the partitioned copy began to stop; undefined: still active at the deadline. */
  oldStoppedAfterUs: number | undefined;
  /** Both copies active (ms); a lower bound when the old copy is still active. */
  windowMs: number;
}

export interface PartitionResult {
  cutUs: number;
  units: PartitionedUnit[];
  /** The report lines, one per unit. */
  lines: string[];
}

const fmtMs = (us: number) => `${(us / 1000).toFixed(0)} ms`;

/**
 * Cut all of `victim`'s traffic (its loopback keeps working, so its local etcd member answers
 * without quorum), wait until every unit of `moving` is active on a survivor, then until the
 * partitioned copies stop: not forever, a copy still active `boundMs` + 10 s after the last new
 * copy started is reported as such. The partition stays in place; the caller heals it.
 */
export async function partitionAndMeasure(
  victim: string,
  moving: readonly string[],
  survivors: readonly string[],
  boundMs: number,
  timeoutMs = 30_000,
): Promise<PartitionResult> {
  const cutUs = monoNowUs();
  partition(victim);
  const moved = await waitMoved(moving, survivors, timeoutMs);
  const lastNewUs = Math.max(...moving.map((u) => moved.get(u)!.enterUs));
  // exec works during a partition: it is not network.
  const deadlineUs = lastNewUs + (boundMs + 10_000) * 1000;
  let old = await unitsTimes(victim, moving);
  while (old.some((t) => t.activeState === 'active') && monoNowUs() < deadlineUs) {
    await sleep(100);
    old = await unitsTimes(victim, moving);
  }
  // A fenced copy may be unloaded already (no timestamps left in systemctl show): the journal still
  // has the moment its stop began.
  const stopped = await stopStartedUs(victim, moving, cutUs);
  const units = moving.map((u, i): PartitionedUnit => {
    const n = moved.get(u)!;
    const o = old[i]!;
    const stillActive = o.activeState === 'active';
    const exitUs = o.activeExitUs > cutUs ? o.activeExitUs : stopped.get(u);
    if (!stillActive && exitUs === undefined)
      throw new Error(`${u} on ${victim} is ${o.activeState} but no stop is recorded`);
    const endUs = stillActive ? monoNowUs() : exitUs!;
    return {
      unit: u,
      newOn: n.m,
      newPid: n.pid,
      newAfterUs: n.enterUs - cutUs,
      oldStoppedAfterUs: stillActive ? undefined : endUs - cutUs,
      windowMs: Math.max(0, endUs - n.enterUs) / 1000,
    };
  });
  const lines = units.map(
    (p) =>
      `${p.unit}: new copy on ${p.newOn} after ${fmtMs(p.newAfterUs)}, ` +
      (p.oldStoppedAfterUs === undefined
        ? `old copy on ${victim} STILL ACTIVE`
        : `old copy stopped after ${fmtMs(p.oldStoppedAfterUs)}`) +
      `, duplicate window ${p.oldStoppedAfterUs === undefined ? '≥ ' : ''}${p.windowMs.toFixed(0)} ms`,
  );
  return { cutUs, units, lines };
}
