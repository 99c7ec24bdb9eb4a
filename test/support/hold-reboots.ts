/**
 * A cluster agent left running in a machine by another test file would see /run/reboot-required
 * after an update test's apply and reboot the machine (strategy reboot, its default). holdReboots
 * turns its reboots off through a real reload (REBOOT_STRATEGY=off in /etc/flotilla/update.conf,
 * `systemctl reload`, waits for the agent's "configuration reloaded" line) and returns the undo,
 * which puts the old update.conf back and reloads again. No agent running: nothing to do.
 */
import { machineExec } from './testbed.js';

const CONF = '/etc/flotilla/update.conf';
const BACKUP = '/etc/flotilla/update.conf.held-by-test';

export async function holdReboots(m: string): Promise<() => void> {
  const active = machineExec(m, 'sh', '-c', 'systemctl is-active flotilla.service || true').trim();
  if (active !== 'active') return () => undefined;
  const since = machineExec(m, 'date', '+%Y-%m-%d %H:%M:%S').trim();
  machineExec(
    m,
    'sh',
    '-c',
    `mkdir -p /etc/flotilla; [ -e ${CONF} ] && cp -p ${CONF} ${BACKUP}; ` +
      `echo REBOOT_STRATEGY=off >> ${CONF}; systemctl reload flotilla.service`,
  );
  const restore = () =>
    machineExec(
      m,
      'sh',
      '-c',
      `if [ -e ${BACKUP} ]; then mv ${BACKUP} ${CONF}; else rm -f ${CONF}; fi; systemctl reload flotilla.service`,
    );
  const deadline = Date.now() + 30_000;
  const journal = () =>
    machineExec(m, 'journalctl', '-u', 'flotilla.service', `--since=${since}`, '--no-pager', '-o', 'cat');
  while (!/configuration reloaded/.test(journal())) {
    if (Date.now() > deadline) {
      restore();
      throw new Error(`the agent in ${m} did not reload its configuration`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  return restore;
}
