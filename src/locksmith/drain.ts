/**
 * Drain: the machine's `unschedulable` flag in its registry record, and the check "do the units
 * that were here run elsewhere yet?". The engine does the moving (src/engine/scheduler.ts skips
 * unschedulable machines); this side only marks and watches.
 */
import { cmp, op, type KvStore } from '../registry/kv.js';
import type { Snapshot } from '../registry/registry.js';
import { KEYS, type MachineRecord } from '../registry/types.js';

/**
 * Set or clear `unschedulable` on machine `id`'s record, keeping its lease (one guarded txn,
 * retried on a race with the agent's own refresh). Returns false when the machine is not
 * registered (nothing to mark).
 */
export async function setUnschedulable(store: KvStore, id: string, on: boolean): Promise<boolean> {
  const key = KEYS.machine(id);
  for (let i = 0; i < 8; i++) {
    const kv = await store.get(key);
    if (!kv) return false;
    const rec = JSON.parse(kv.value) as MachineRecord;
    if ((rec.unschedulable === true) === on) return true;
    const next: MachineRecord = { ...rec };
    if (on) next.unschedulable = true;
    else delete next.unschedulable;
    const res = await store.txn({
      compare: [cmp.modRev(key, kv.modRevision)],
      success: [op.put(key, JSON.stringify(next), kv.lease === '0' ? undefined : kv.lease)],
    });
    if (res.succeeded) return true;
  }
  return false;
}

const RUNNING = new Set(['active', 'activating', 'deactivating', 'reloading']);

/**
 * The units that keep this machine from rebooting: non-Global units still scheduled here or still
 * running here, and those of `moved` (units that were here when the drain began) placed on another
 * machine that does not report them running (launched) or loaded yet. A unit the engine cannot
 * place anywhere (no machine in its schedule record) does not hold the reboot up.
 */
export function pendingUnits(snap: Snapshot, me: string, moved: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const [name, job] of snap.jobs) {
    if (job.desiredState === 'inactive') continue;
    const sched = snap.schedules.get(name);
    const states = snap.states.get(name);
    const mine = states?.get(me);
    if (sched?.machineID === me) {
      out.push(name);
      continue;
    }
    if (sched === undefined) {
      // Between unschedule and schedule; Global units have no record and are never in `moved`.
      if (moved.has(name)) out.push(name);
      continue;
    }
    if (mine && RUNNING.has(mine.activeState) && job.desiredState === 'launched') {
      out.push(name);
      continue;
    }
    if (!moved.has(name) || sched.machineID === undefined) continue;
    const there = states?.get(sched.machineID);
    const ok =
      there !== undefined &&
      (job.desiredState === 'launched' ? there.activeState === 'active' : there.loadState === 'loaded');
    if (!ok) out.push(name);
  }
  return out.sort();
}

/** The units scheduled on `me` now (what a drain is about to move). */
export function unitsOn(snap: Snapshot, me: string): Set<string> {
  const out = new Set<string>();
  for (const [name, rec] of snap.schedules) if (rec.machineID === me) out.add(name);
  return out;
}
