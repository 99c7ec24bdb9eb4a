/**
 * Helpers for the real-systemd suites: a DbusSystemdManager driving machine m from the host.
 *
 * - Bus: the machine's system bus socket, as test/env exposes it on the host.
 * - Files: our units directory inside the machine is reached through /proc/<machine pid 1>/root (the
 *   pid is recorded by test/env next to the bus socket: .../machines/mK/pid1).
 * - Journal: failed-job journal lines come from `journalctl` run inside the machine (exec.sh).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DbusSystemdManager, type DbusSystemdManagerOptions } from '../../src/systemd/dbus-manager.js';
import { tailUnit } from '../../src/systemd/journal.js';
import { envDir, machineBusAddress, machineExec } from '../support/testbed.js';

/** Our own units directory in the machines: not the agent's default, which other suites' agents manage. */
export const UNITS_DIR = '/run/flotilla-systemd-tests/units';

/** The machine's root directory as seen from the host. */
export function machineRoot(m: string): string {
  const sock = machineBusAddress(m).replace(/^unix:path=/, '');
  const pidFile = join(dirname(dirname(sock)), 'pid1');
  if (!existsSync(pidFile)) throw new Error(`cannot find ${pidFile} (test/env layout changed?)`);
  return `/proc/${readFileSync(pidFile, 'utf8').trim()}/root`;
}

export function machineFileExists(m: string, path: string): boolean {
  return existsSync(join(machineRoot(m), path));
}

/** journalctl inside machine m, as a command prefix for journal.ts. */
export function machineJournalctl(m: string): string[] {
  return ['bash', join(envDir, 'exec.sh'), m, 'journalctl'];
}

export async function openManager(
  m: string,
  opts: DbusSystemdManagerOptions = {},
): Promise<DbusSystemdManager> {
  return DbusSystemdManager.connect({
    address: machineBusAddress(m),
    fsRoot: machineRoot(m),
    unitsDir: UNITS_DIR,
    journal: (unit, lines) => tailUnit(unit, lines, { command: machineJournalctl(m) }),
    ...opts,
  });
}

/** `systemctl ARGS` inside machine m (stdout). */
export function systemctl(m: string, ...args: string[]): string {
  return machineExec(m, 'systemctl', ...args);
}
