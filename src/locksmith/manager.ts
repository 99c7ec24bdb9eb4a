/**
 * RebootManager: locksmithd as a Subsystem the agent hosts (src/daemon/subsystem.ts). Every tick it
 * observes (need-reboot marker, window, lock, its machine record, the units), asks the pure planner
 * (plan.ts) for one step and executes it: take the lock, drain, reboot, or release after the
 * reboot. See README "Reboots".
 *
 * "Reboot needed" is the file /run/reboot-required (Debian's marker; `locksmithctl
 * send-need-reboot` and the OS updater write it). The lock's holder key is bound to a lease of
 * LOCKSMITHD_LOCK_TTL that this manager keeps alive while it runs: a holder whose agent is gone
 * longer than that (crashed, or rebooted into a broken state) loses the lock. A holder that
 * comes back healthy releases it itself (its boot ID changed).
 */
import { systemClock, type TimeSource } from '../lib/clock.js';
import { existsSync, readFileSync } from 'node:fs';
import { isCode } from '../lib/errors.js';
import { SerialRunner } from '../lib/runner.js';
import type { KvStore } from '../registry/kv.js';
import { LeaseKeeper } from '../registry/lease.js';
import { Registry } from '../registry/registry.js';
import { KEYS, type MachineRecord } from '../registry/types.js';
import type {
  ReloadOutcome,
  StopMode,
  Subsystem,
  SubsystemContext,
  SubsystemStatus,
} from '../daemon/subsystem.js';
import type { Logger } from '../lib/log.js';
import type { SystemdManager } from '../systemd/manager.js';
import { loadRebootConfig, type RebootConfig } from './config.js';
import { pendingUnits, setUnschedulable, unitsOn } from './drain.js';
import { RebootLock } from './lock.js';
import { planStep, type Observed, type Step } from './plan.js';
import { msUntilOpen } from './window.js';

export const REBOOT_REQUIRED = '/run/reboot-required';

export interface RebootHost {
  /** Wall time for windows and drain timing (the Clock port, src/lib/clock.ts; a fake in unit tests). */
  clock: TimeSource;
  bootId(): string;
  needReboot(): boolean;
  /** The reboot itself (default: the SystemdManager's `reboot`, i.e. `systemctl reboot`). */
  reboot(): Promise<void>;
}

export function defaultHost(systemd: SystemdManager | undefined, marker = REBOOT_REQUIRED): RebootHost {
  return {
    clock: systemClock,
    bootId: () => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
    needReboot: () => existsSync(marker),
    reboot: async () => {
      if (!systemd) throw new Error('no systemd connection: cannot reboot');
      await systemd.reboot();
    },
  };
}

export interface RebootManagerOptions {
  /** Settings; default: read update.conf and the environment at start. */
  config?: RebootConfig;
  host?: RebootHost;
  intervalMs?: number;
}

export class RebootManager implements Subsystem<RebootConfig | undefined> {
  readonly name = 'locksmith';
  private cfg!: RebootConfig;
  private host!: RebootHost;
  private store!: KvStore;
  private registry!: Registry;
  private lock!: RebootLock;
  private log!: Logger;
  private me = '';
  private keeper: LeaseKeeper | undefined;
  private runner: SerialRunner | undefined;
  private timer: NodeJS.Timeout | undefined;
  private drainStart: number | undefined;
  private moved = new Set<string>();
  private lastReason = '';
  private rebooting = false;
  private state: SubsystemStatus['state'] = 'stopped';
  private lastStep: Step | undefined;

  constructor(private readonly opts: RebootManagerOptions = {}) {}

  start(ctx: SubsystemContext<RebootConfig | undefined>): Promise<void> {
    try {
      this.init(ctx);
      return Promise.resolve();
    } catch (err) {
      this.state = 'failed';
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private init(ctx: SubsystemContext<RebootConfig | undefined>): void {
    if (!ctx.store) throw new Error('locksmith needs the registry');
    this.cfg = ctx.config ?? this.opts.config ?? loadRebootConfig();
    this.host = this.opts.host ?? defaultHost(ctx.systemd);
    this.store = ctx.store;
    this.registry = ctx.registry ?? new Registry(ctx.store);
    this.lock = new RebootLock(ctx.store, this.cfg.group);
    this.log = ctx.log;
    this.me = ctx.machineId;
    this.state = 'running';
    this.runner = new SerialRunner(
      () => this.tick().then(() => undefined),
      (err) => {
        this.state = 'degraded';
        this.log.warn({ err: err.message }, `locksmith: ${err.message}`);
      },
    );
    this.log.info(
      { strategy: this.cfg.strategy, window: this.cfg.window?.text, group: this.cfg.group },
      `locksmith: strategy ${this.cfg.strategy}${this.cfg.window ? `, window ${this.cfg.window.text}` : ''}`,
    );
    const every = this.opts.intervalMs ?? 2000;
    const loop = () => {
      this.runner?.trigger();
      this.timer = setTimeout(loop, every);
      this.timer.unref();
    };
    this.timer = setTimeout(loop, every); // the first pass after one interval, like every other
    this.timer.unref();
    ctx.signal.addEventListener('abort', () => clearTimeout(this.timer), { once: true });
  }

  /** Run one observe → plan → execute pass (tests; the timer calls it too); passes never overlap. */
  tick(): Promise<Step> {
    const run = this.chain.then(() => this.pass());
    this.chain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private chain: Promise<void> = Promise.resolve();

  private async pass(): Promise<Step> {
    if (this.rebooting) return { type: 'wait', reason: 'rebooting' };
    const o = await this.observe();
    const step = planStep(o);
    this.lastStep = step;
    if (step.reason !== this.lastReason) {
      this.lastReason = step.reason;
      this.log.info({ step: step.type, pending: o.pending.length || undefined }, `locksmith: ${step.reason}`);
    }
    await this.execute(step);
    if (this.state === 'degraded') this.state = 'running';
    return step;
  }

  private async observe(): Promise<Observed> {
    const now = this.host.clock.now();
    // The whole-cluster snapshot only while draining: otherwise a pass costs two small reads.
    const kv = await this.store.get(KEYS.machine(this.me));
    const rec = kv ? (JSON.parse(kv.value) as MachineRecord) : undefined;
    const snap = rec?.unschedulable === true ? await this.registry.snapshot() : undefined;
    const holder = await this.lock.holder(this.me);
    const status = holder ? undefined : await this.lock.status();
    const unschedulable = rec?.unschedulable === true;
    if (!unschedulable) this.drainStart = undefined;
    const o: Observed = {
      strategy: this.cfg.strategy,
      cluster: this.store.backend === 'etcd',
      needReboot: this.host.needReboot(),
      untilWindow: this.cfg.window ? msUntilOpen(this.cfg.window, now, this.cfg.zone) : 0,
      bootId: this.host.bootId(),
      available: status ? status.semaphore > 0 : false,
      unschedulable,
      healthy: rec !== undefined,
      pending: snap ? pendingUnits(snap, this.me, this.moved) : [],
      drainTimeoutMs: this.cfg.drainTimeoutMs,
    };
    if (holder) o.holding = holder.bootId ? { bootId: holder.bootId } : {};
    if (unschedulable) {
      this.drainStart ??= now;
      o.drainingMs = now - this.drainStart;
      for (const n of unitsOn(snap!, this.me)) this.moved.add(n);
    }
    return o;
  }

  private async execute(step: Step): Promise<void> {
    switch (step.type) {
      case 'wait':
        return;
      case 'lock': {
        const lease = await this.lockLease();
        try {
          await this.lock.lock(this.me, lease, { bootId: this.host.bootId() });
          this.log.info({ group: this.cfg.group }, 'locksmith: reboot lock taken');
        } catch (err) {
          if (!isCode(err, 'E_LOCK')) throw err; // lost a race: wait for the next tick
        }
        return;
      }
      case 'drain': {
        const snap = await this.registry.snapshot();
        this.moved = unitsOn(snap, this.me);
        await setUnschedulable(this.store, this.me, true);
        this.drainStart = this.host.clock.now();
        this.log.info(
          { units: [...this.moved] },
          `locksmith: unschedulable; ${this.moved.size} unit(s) to move`,
        );
        return;
      }
      case 'reboot':
        if (step.timedOut) this.log.warn({}, `locksmith: ${step.reason}`);
        this.rebooting = true;
        this.state = 'running';
        this.log.info({ at: new Date(this.host.clock.now()).toISOString() }, 'locksmith: rebooting now');
        try {
          await this.host.reboot();
        } catch (err) {
          this.rebooting = false;
          throw err;
        }
        return;
      case 'release': {
        const holder = await this.lock.holder(this.me);
        await setUnschedulable(this.store, this.me, false);
        try {
          await this.lock.unlock(this.me);
        } catch (err) {
          if (!isCode(err, 'E_LOCK')) throw err;
        }
        if (holder && holder.lease !== this.keeper?.id)
          await this.store.revokeLease(holder.lease).catch(() => undefined);
        this.moved.clear();
        this.log.info({}, 'locksmith: reboot lock released; machine schedulable again');
        return;
      }
      case 'undrain':
        await setUnschedulable(this.store, this.me, false);
        this.moved.clear();
        return;
    }
  }

  /** The lease the holder key hangs on: granted on first use, renewed while this manager runs. */
  private async lockLease(): Promise<string> {
    if (!this.keeper) {
      const k = new LeaseKeeper(this.store, this.cfg.lockTtlSec);
      k.on('error', (e) => this.log.warn({ err: e.message }, 'locksmith: lock lease renewal failed'));
      await k.start();
      this.keeper = k;
    }
    const id = this.keeper.id;
    if (id === undefined) throw new Error('lock lease not granted yet');
    return id;
  }

  reload(next: RebootConfig | undefined): Promise<ReloadOutcome> {
    const cfg = next ?? loadRebootConfig();
    const changed = (['strategy', 'window', 'zone', 'drainTimeoutMs'] as const).filter(
      (k) => JSON.stringify(cfg[k]) !== JSON.stringify(this.cfg[k]),
    );
    const later = (['group', 'lockTtlSec'] as const).filter((k) => cfg[k] !== this.cfg[k]);
    this.cfg = { ...cfg, group: this.cfg.group, lockTtlSec: this.cfg.lockTtlSec };
    if (changed.length > 0)
      this.log.info(
        { strategy: this.cfg.strategy, window: this.cfg.window?.text, changed },
        `locksmith: reloaded, strategy ${this.cfg.strategy}${this.cfg.window ? `, window ${this.cfg.window.text}` : ''}`,
      );
    return Promise.resolve({ applied: changed, needRestart: later });
  }

  async stop(_mode: StopMode): Promise<void> {
    clearTimeout(this.timer);
    await this.runner?.stop();
    // The lock lease is never revoked here: a machine that stops while holding the lock (for the
    // reboot, or killed) keeps it until it comes back healthy or the lease runs out.
    await this.keeper?.stop(false);
    this.state = 'stopped';
  }

  status(): SubsystemStatus {
    return {
      state: this.state,
      strategy: this.cfg?.strategy,
      window: this.cfg?.window?.text,
      step: this.lastStep?.type,
      ...(this.lastStep ? { reason: this.lastStep.reason } : {}),
      rebooting: this.rebooting,
    };
  }
}
