/**
 * The agent process's lifecycle: sd_notify (READY=1 once listeners are up and the first reconcile
 * finished, the watchdog while the reconcile loop is healthy, STOPPING=1 on shutdown), the signals,
 * and the shutdown sequence.
 *
 *   SIGTERM/SIGINT: graceful. Under `systemctl restart` (our unit has a restart job queued) the
 *     units keep running and the lease is kept, so the next agent adopts everything (fleet #1086).
 *     Otherwise (`systemctl stop`, or not under systemd) local units are stopped and the lease is
 *     revoked, so the machine leaves and its units move at once. A second signal forces exit; a
 *     shutdown past 60 s too.
 *   SIGHUP: `reload()` (the daemon re-reads the config).
 *   SIGUSR1: `dump()` is logged as JSON.
 */
import { KEYS, type AgentConfig } from './config.js';
import { PROXY_KEYS } from './proxy-lifecycle.js';
import { SdNotify } from '../lib/sdnotify.js';
import type { Logger } from '../lib/log.js';
import type { SystemdManager } from '../systemd/manager.js';

/**
 * Is our own systemd unit being restarted (a restart job queued for it)? Asks systemd through the
 * port: the unit of our pid, then that unit's job. Only under systemd (INVOCATION_ID); any failure
 * or a slow bus (3 s) counts as no.
 */
export async function restartPending(
  systemd: Pick<SystemdManager, 'unitOfPid' | 'list'>,
  env: NodeJS.ProcessEnv = process.env,
  pid = process.pid,
  timeoutMs = 3000,
): Promise<boolean> {
  if (!env.INVOCATION_ID) return false;
  let timer: NodeJS.Timeout | undefined;
  const slow = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const ask = (async () => {
    const unit = await systemd.unitOfPid(pid);
    if (!unit?.endsWith('.service')) return false;
    const [row] = await systemd.list([unit]);
    return row?.jobType === 'restart';
  })().catch(() => false);
  try {
    return await Promise.race([ask, slow]);
  } finally {
    clearTimeout(timer);
  }
}

/** Config keys (file names) that the daemon itself applies live; subsystems name their own. */
const LIVE_KEYS = ['metadata', 'verbosity'];

/** Keys (config file names) whose value changed but that apply only at the next agent start. */
export function restartOnlyChanges(
  before: AgentConfig,
  after: AgentConfig,
  liveKeys: readonly string[] = PROXY_KEYS,
): string[] {
  const live = new Set([...LIVE_KEYS, ...liveKeys]);
  return Object.entries(KEYS)
    .filter(
      ([k, spec]) => !live.has(k) && JSON.stringify(before[spec.field]) !== JSON.stringify(after[spec.field]),
    )
    .map(([k]) => k);
}

export interface LifecycleDeps {
  log: Logger;
  systemd: Pick<SystemdManager, 'unitOfPid' | 'list'>;
  /** The steps of a shutdown, in order; `restart` says whether the next agent adopts our units. */
  shutdown: (restart: boolean) => Promise<void>;
  reload: () => void;
  dump: () => Record<string, unknown>;
  notify?: SdNotify;
}

export class Lifecycle {
  readonly notify: SdNotify;
  private stopping = false;

  constructor(private readonly d: LifecycleDeps) {
    this.notify = d.notify ?? new SdNotify();
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  /** READY=1 with a status line, then the watchdog pings while `alive()`. */
  async ready(status: string, alive: () => boolean): Promise<void> {
    await this.notify.ready(status);
    this.notify.startWatchdog(alive);
  }

  /** Install the signal handlers; resolves with the exit code once a shutdown finished. */
  run(): Promise<number> {
    const { log } = this.d;
    return new Promise<number>((resolve) => {
      const shutdown = async (signal: string) => {
        if (this.stopping) {
          log.warn({ signal }, 'second signal: exiting now');
          process.exit(1);
        }
        this.stopping = true;
        await this.notify.stopping();
        this.notify.stopWatchdog();
        const restart = await restartPending(this.d.systemd);
        await this.notify.status(
          restart ? 'restarting: units keep running' : 'stopping: leaving the cluster',
        );
        log.info(
          { signal, restart },
          restart ? 'restarting: units keep running' : 'stopping: leaving the cluster',
        );
        const force = setTimeout(() => {
          log.error({}, 'shutdown took longer than 60 s; exiting');
          process.exit(1);
        }, 60_000);
        force.unref();
        try {
          await this.d.shutdown(restart);
        } catch (err) {
          log.error({ err: (err as Error).message }, 'error during shutdown');
        }
        clearTimeout(force);
        resolve(0);
      };
      process.on('SIGTERM', () => void shutdown('SIGTERM'));
      process.on('SIGINT', () => void shutdown('SIGINT'));
      process.on('SIGUSR1', () => log.info({ state: this.d.dump() }, 'state dump'));
      process.on('SIGHUP', () => {
        log.info({ signal: 'SIGHUP' }, 'SIGHUP: reloading the configuration');
        this.d.reload();
      });
    });
  }
}
