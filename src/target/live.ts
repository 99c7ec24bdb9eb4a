/**
 * What a live apply (root `/` on a booted host) does beyond files: daemon-reload and unit commands
 * through systemd's D-Bus API (src/systemd's DbusSystemdManager), and the kernel hostname.
 *
 * `TargetSystemd` is the port apply.ts uses; `dbusTargetSystemd` connects to the system bus only
 * when a live plan needs it. Commands map onto systemd's job methods as systemctl does.
 */
import { hostname as osHostname } from 'node:os';
import { FlotillaError } from '../lib/errors.js';
import { DbusSystemdManager, type HostJobMember } from '../systemd/dbus-manager.js';
import type { Run } from './exec.js';
import type { UnitCommand } from './units.js';

export interface TargetSystemd {
  daemonReload(): Promise<void>;
  /**
   * Runs `command` on `name` and waits for its job (rejects when the job fails), except while the
   * unit this process runs in is still activating (first boot): then the job is queued ('queued').
   */
  unitCommand(name: string, command: UnitCommand): Promise<'done' | 'queued'>;
  /** Is this boot reaching `unit` (a target)? Active, activating, or a start job queued for it. */
  inThisBoot(unit: string): Promise<boolean>;
  close(): Promise<void>;
}

export const COMMAND_MEMBERS: Readonly<Record<UnitCommand, HostJobMember>> = {
  start: 'StartUnit',
  stop: 'StopUnit',
  restart: 'RestartUnit',
  reload: 'ReloadUnit',
  'try-restart': 'TryRestartUnit',
  'reload-or-restart': 'ReloadOrRestartUnit',
  'reload-or-try-restart': 'ReloadOrTryRestartUnit',
};

/** The port over a DbusSystemdManager (connected on first use). */
export function dbusTargetSystemd(
  connect: () => Promise<DbusSystemdManager> = () => DbusSystemdManager.connect(),
): TargetSystemd {
  let m: Promise<DbusSystemdManager> | undefined;
  const get = (): Promise<DbusSystemdManager> => (m ??= connect());
  return {
    async daemonReload() {
      await (await get()).reload();
    },
    async unitCommand(name, command) {
      const m = await get();
      // At boot flotilla-cloudinit / flotilla-ignition run as oneshot units still activating, ordered
      // Before= the units their configs start (etcd-member, flotilla, and anything ordered after
      // those): waiting for such a job would wait for ourselves. While this process's own unit is
      // activating, jobs are queued (systemctl --no-block, as coreos-cloudinit issued them); run
      // from a shell or a started service, they are awaited and a failed job is an error.
      const self = await m.unitOfPid(process.pid).catch((): undefined => undefined);
      const selfState =
        self === undefined ? undefined : await m.state(self).catch((): undefined => undefined);
      if (selfState?.activeState === 'activating') {
        await m.enqueueHostUnitJob(name, COMMAND_MEMBERS[command]);
        return 'queued';
      }
      await m.hostUnitJob(name, COMMAND_MEMBERS[command]);
      return 'done';
    },
    async inThisBoot(unit) {
      const [row] = await (await get()).list([unit]);
      if (!row) return false;
      return row.activeState === 'active' || row.activeState === 'activating' || row.jobType === 'start';
    },
    async close() {
      if (m) await (await m.catch(() => undefined))?.close();
    },
  };
}

/**
 * Sets the running system's hostname: `hostnamectl set-hostname` when systemd-hostnamed answers,
 * else `hostname NAME` (sethostname(2)). No-op when the kernel already has it. `name` is validated
 * (apply.ts) so it never starts with "-".
 */
export async function setLiveHostname(name: string, run: Run): Promise<boolean> {
  if (osHostname() === name) return false;
  const viaCtl = await run('hostnamectl', ['set-hostname', name]);
  if (viaCtl.code === 0) return true;
  const viaHostname = await run('hostname', [name]);
  if (viaHostname.code === 0) return true;
  const why = viaHostname.error === 'ENOENT' ? 'hostname is not installed' : viaHostname.stderr.trim();
  throw new FlotillaError('E_TARGET', `hostname: cannot set the hostname to ${name}: ${why}`, {
    hostname: name,
  });
}
