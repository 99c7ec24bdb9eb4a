/**
 * Mark the booted slot good on health, not on a timer (CoreOS ran setgoodroot 45 s after
 * update_engine started, so a quick second reboot after an update rolled back a good update).
 *
 * Started after READY=1 (daemon.ts `afterReady`), so "ready" is already true; then every
 * `intervalMs` it asks `healthy()` (the agent's own health: registry view available, reconciles
 * going) and marks the slot good once it has been healthy without a break for
 * UPDATE_HEALTHY_SECONDS. A failed check restarts the count. A reboot before that is a
 * deliberate trial: the slot's one try is used up and GRUB falls back to the old slot.
 *
 * Disabled when update.conf has no UPDATE_DISK, UPDATE_HEALTHY_SECONDS=0, or the disk has no
 * A/B slots; finished (running, nothing to do) when the booted slot is already good.
 */
import type { Logger } from '../lib/log.js';
import { nullLogger } from '../lib/log.js';
import { loadUpdateConfig, type UpdateConfig } from '../update/config.js';
import { bootedSlot, markGoodOnDisk, openSlotDisk } from '../update/disk-ops.js';
import type { ReloadOutcome, Subsystem, SubsystemContext, SubsystemStatus } from './subsystem.js';

/** Pure: when the healthy streak began (undefined: not healthy now) and whether to mark good. */
export function markGoodStep(
  since: number | undefined,
  now: number,
  healthy: boolean,
  needMs: number,
): { since: number | undefined; mark: boolean } {
  if (!healthy) return { since: undefined, mark: false };
  const s = since ?? now;
  return { since: s, mark: now - s >= needMs };
}

export interface MarkGoodOptions {
  healthy: () => boolean;
  config?: () => UpdateConfig;
  intervalMs?: number;
  now?: () => number;
  /** The running slot (tests); default from /proc/cmdline. */
  booted?: string;
}

export class MarkGood implements Subsystem<undefined> {
  readonly name = 'update-mark-good';
  private timer: NodeJS.Timeout | undefined;
  private since: number | undefined;
  private st: SubsystemStatus = { state: 'stopped' };
  private log: Logger = nullLogger;
  private done: Promise<void> | undefined;

  constructor(private readonly o: MarkGoodOptions) {}

  async start(ctx: SubsystemContext<undefined>): Promise<void> {
    this.log = ctx.log;
    const c = (this.o.config ?? (() => loadUpdateConfig()))();
    if (!c.disk || c.healthySeconds === 0) {
      this.st = {
        state: 'disabled',
        reason: c.disk ? 'UPDATE_HEALTHY_SECONDS=0' : 'no UPDATE_DISK in update.conf',
      };
      return;
    }
    const disk = c.disk;
    const sd = await openSlotDisk(disk, { writable: false });
    let booted: 'A' | 'B';
    try {
      booted = bootedSlot(sd, this.o.booted);
      if (sd.flags[booted].successful) {
        this.st = { state: 'running', reason: `slot ${booted} is already marked good`, slot: booted };
        return;
      }
    } finally {
      await sd.disk.close();
    }
    const needMs = c.healthySeconds * 1000;
    const now = this.o.now ?? Date.now;
    this.st = {
      state: 'running',
      reason: `trial boot of slot ${booted}: waiting for ${c.healthySeconds}s of health`,
      slot: booted,
    };
    const tick = () => {
      const r = markGoodStep(this.since, now(), this.o.healthy(), needMs);
      this.since = r.since;
      if (!r.mark) return;
      this.stopTimer();
      this.done = this.mark(disk, c.grubenv, booted);
    };
    this.timer = setInterval(tick, this.o.intervalMs ?? 1000);
    this.timer.unref();
    tick();
  }

  private async mark(disk: string, grubenv: string | undefined, booted: 'A' | 'B'): Promise<void> {
    try {
      const sd = await openSlotDisk(disk, grubenv ? { grubenv } : {});
      try {
        await markGoodOnDisk(sd, booted);
      } finally {
        await sd.disk.close();
      }
      this.st = { state: 'running', reason: `slot ${booted} marked good after a healthy run`, slot: booted };
      this.log.info({ slot: booted }, 'booted slot marked good');
    } catch (err) {
      this.st = { state: 'degraded', reason: `mark-good failed: ${(err as Error).message}`, slot: booted };
      this.log.error({ err: (err as Error).message }, 'mark-good failed');
    }
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Resolves once a started mark-good write has finished (tests, shutdown). */
  async settled(): Promise<void> {
    await this.done;
  }

  reload(): Promise<ReloadOutcome> {
    return Promise.resolve({ applied: [], needRestart: [] });
  }

  async stop(): Promise<void> {
    this.stopTimer();
    await this.done;
    if (this.st.state !== 'disabled') this.st = { ...this.st, state: 'stopped' };
  }

  status(): SubsystemStatus {
    return {
      ...this.st,
      ...(this.since !== undefined ? { healthySince: new Date(this.since).toISOString() } : {}),
    };
  }
}
