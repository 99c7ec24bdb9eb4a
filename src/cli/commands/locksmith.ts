/**
 * `flotilla locksmith status|lock|unlock|set-max|reboot|send-need-reboot`, also installed as
 * `locksmithctl` (argv[0] dispatch in main.ts), printing locksmithctl's output (LS:locksmithctl):
 *
 *   status   `Available: N`, `Max: M`, and with holders a blank line, `MACHINE ID`, one per line
 *   lock [ID] / unlock [ID]   default: this machine (/etc/machine-id); `Error locking: …`
 *   set-max N                 `Old-Max: A`, `Max: N`
 *   reboot                    root only: take the lock and reboot now (no retry, no drain)
 *   send-need-reboot          mark this machine as needing a reboot (/run/reboot-required), which
 *                             the agent's reboot manager acts on (locksmith faked an update_engine
 *                             D-Bus signal instead)
 *
 * The registry is reached as the agent reaches it: etcd_servers and etcd_key_prefix from
 * /etc/flotilla/flotilla.conf and FLOTILLA_* (or --etcd-endpoint / locksmithctl's -endpoint).
 * Manual locks are bound to a lease of LOCKSMITHD_LOCK_TTL (default 10 min) unless ID is a machine in
 * the cluster, whose presence lease then holds it: no lock is ever left held for good.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { loadConfig } from '../../daemon/config.js';
import { readMachineId } from '../../daemon/identity.js';
import { FlotillaError, isCode } from '../../lib/errors.js';
import { loadRebootConfig } from '../../locksmith/config.js';
import { RebootLock } from '../../locksmith/lock.js';
import { REBOOT_REQUIRED } from '../../locksmith/manager.js';
import type { KvStore } from '../../registry/kv.js';
import { openStore } from '../../daemon/open-store.js';
import { KEYS } from '../../registry/types.js';
import { CliExit, UsageError, type Command, type Context } from '../command.js';

/** locksmithctl's Go-style single-dash flags (`-endpoint=x`, `-group x`) as ours. */
export function locksmithctlArgv(argv: readonly string[]): string[] {
  const names: Record<string, string> = { endpoint: 'etcd-endpoint', group: 'group', debug: 'debug' };
  return argv.map((a) => {
    const m = /^--?([a-z-]+)(=.*)?$/.exec(a);
    if (!m || names[m[1]!] === undefined) return a;
    return `--${names[m[1]!]}${m[2] ?? ''}`;
  });
}

async function open(ctx: Context): Promise<{ store: KvStore; lock: RebootLock }> {
  const env = ctx.env;
  const flags: Record<string, string> = {};
  const ep = ctx.flags['etcd-endpoint'] ?? env.LOCKSMITHCTL_ENDPOINT;
  if (typeof ep === 'string' && ep !== '') flags['etcd-servers'] = ep;
  const config = loadConfig({ env, flags }).config;
  if (config.etcdServers.length === 0) {
    throw new CliExit(
      1,
      'locksmith: this machine uses the embedded registry (no etcd_servers), which only the agent opens; ' +
        'set etcd_servers or pass --etcd-endpoint',
    );
  }
  const store = await openStore(config);
  const g = ctx.flags.group ?? env.LOCKSMITHCTL_GROUP ?? env.LOCKSMITHD_GROUP ?? '';
  return { store, lock: new RebootLock(store, String(g)) };
}

function machineArg(ctx: Context): string {
  if (ctx.args.length > 2) throw new UsageError(`${ctx.args[0]} takes at most one machine ID`);
  return ctx.args[1] ?? readMachineId();
}

/** The presence lease of a registered machine, else a fresh lease of LOCKSMITHD_LOCK_TTL. */
async function leaseFor(store: KvStore, id: string, env: NodeJS.ProcessEnv): Promise<string> {
  const kv = await store.get(KEYS.machine(id));
  if (kv && kv.lease !== '0') return kv.lease;
  return (await store.grantLease(loadRebootConfig(env).lockTtlSec)).id;
}

async function bootId(): Promise<string | undefined> {
  const { readFile } = await import('node:fs/promises');
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim() || undefined;
}

export const locksmith: Command = {
  name: 'locksmith',
  summary: 'Reboot coordination (locksmithctl): status, lock, unlock, set-max, reboot, send-need-reboot',
  usage: 'locksmith status | lock [MACHINE-ID] | unlock [MACHINE-ID] | set-max N | reboot | send-need-reboot',
  flags: {
    'etcd-endpoint': {
      type: 'string',
      value: 'URLS',
      help: 'etcd endpoints, comma separated (default: etcd_servers of the agent config)',
    },
    group: { type: 'string', value: 'NAME', help: 'Reboot lock group (default: the default group)' },
    debug: { type: 'boolean', default: false, help: 'Accepted for locksmithctl compatibility' },
  },
  // Reached by its full name only (see index.ts); `locksmithctl` is the usual way in.
  hidden: true,
  complete: ['status', 'lock', 'unlock', 'set-max', 'reboot', 'send-need-reboot'],
  async run(ctx) {
    const sub = ctx.args[0];
    const { out } = ctx.io;
    if (sub === undefined || sub === 'help') {
      out(`Usage: ${this.usage}\n`);
      return sub === undefined ? 2 : 0;
    }
    if (sub === 'send-need-reboot') {
      try {
        writeFileSync(REBOOT_REQUIRED, '*** System restart required ***\n', { mode: 0o644 });
      } catch (err) {
        throw new CliExit(1, `send-need-reboot: ${REBOOT_REQUIRED}: ${(err as Error).message}`);
      }
      return 0;
    }
    if (!['status', 'lock', 'unlock', 'set-max', 'reboot'].includes(sub)) {
      ctx.io.err(`Unknown command: ${sub}\n`);
      return 2;
    }
    if (sub === 'reboot' && process.getuid?.() !== 0)
      throw new CliExit(1, 'Must be root to initiate reboot.');
    if (sub === 'set-max' && ctx.args[1] === undefined)
      throw new CliExit(1, 'New maximum value must be set.');
    const { store, lock } = await open(ctx);
    try {
      switch (sub) {
        case 'status': {
          const st = await lock.status();
          out(`Available: ${st.semaphore}\nMax: ${st.max}\n`);
          if (st.holders.length > 0) out(`\nMACHINE ID\n${st.holders.map((h) => `${h}\n`).join('')}`);
          return 0;
        }
        case 'lock':
        case 'unlock': {
          const id = machineArg(ctx);
          try {
            if (sub === 'lock') await lock.lock(id, await leaseFor(store, id, ctx.env));
            else await lock.unlock(id);
          } catch (err) {
            if (isCode(err, 'E_LOCK')) throw new CliExit(1, `Error ${sub}ing: ${err.message}`);
            throw err;
          }
          return 0;
        }
        case 'set-max': {
          const n = Number(ctx.args[1]);
          if (!/^\d+$/.test(ctx.args[1] ?? '')) throw new CliExit(1, `Invalid maximum value: ${ctx.args[1]}`);
          const r = await lock.setMax(n);
          out(`Old-Max: ${r.oldMax}\nMax: ${r.max}\n`);
          return 0;
        }
        case 'reboot': {
          const id = readMachineId();
          const lease = (await store.grantLease(loadRebootConfig(ctx.env).lockTtlSec)).id;
          const boot = await bootId();
          try {
            await lock.lock(id, lease, boot ? { bootId: boot } : {});
          } catch (err) {
            if (isCode(err, 'E_LOCK')) throw new CliExit(1, `Error locking: ${err.message}`);
            throw err;
          }
          // The lock is released by this machine's reboot manager once it is back and healthy.
          await promisify(execFile)('systemctl', ['reboot'], { timeout: 30_000 });
          return 0;
        }
      }
      return 2;
    } catch (err) {
      if (err instanceof FlotillaError && err.code === 'E_REGISTRY_UNAVAILABLE')
        throw new CliExit(1, err.message);
      throw err;
    } finally {
      await store.close();
    }
  },
};
