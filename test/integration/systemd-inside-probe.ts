/**
 * Runs INSIDE a test machine (not a test file): `exec.sh mK env -C /project node --import tsx
 * test/integration/systemd-inside-probe.ts`. It drives the machine's systemd the way the agent will
 * in production: default bus address (/run/dbus/system_bus_socket), default units directory, local
 * journalctl. Prints one JSON report on stdout; systemd-inside.test.ts checks it.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { DbusSystemdManager } from '../../src/systemd/dbus-manager.js';
import { readJournal } from '../../src/systemd/journal.js';
import { SystemdJobError, type UnitEvent } from '../../src/systemd/manager.js';

function children(): string[] {
  const out: string[] = [];
  for (const t of readdirSync('/proc/self/task')) {
    const list = readFileSync(`/proc/self/task/${t}/children`, 'utf8').trim();
    for (const pid of list ? list.split(/\s+/) : []) {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
        // tsx's own esbuild service is expected; anything else (journalctl!) is a leak
        if (!/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')) && !cmd.includes('esbuild'))
          out.push(cmd);
      } catch {
        /* gone */
      }
    }
  }
  return out;
}

const t0 = Date.now();
const report: Record<string, unknown> = { env: process.env.DBUS_SYSTEM_BUS_ADDRESS ?? null };
const suffix = randomBytes(3).toString('hex');
const ok = `flotilla-inside-ok-${suffix}.service`;
const bad = `flotilla-inside-bad-${suffix}.service`;
// Not the default units dir: other suites run agents in these machines that manage /run/flotilla.
const UNITS_DIR = '/run/flotilla-systemd-tests/units';
const mgr = await DbusSystemdManager.connect({ unitsDir: UNITS_DIR });
try {
  report.address = mgr.conn.address;
  const inst = await mgr.installMany([
    {
      name: ok,
      contents:
        '[Unit]\nDescription=inside probe\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c \'printf "flotilla-inside \\342\\230\\203 \\377 end\\n"\'\n\n[Install]\nWantedBy=multi-user.target\n',
    },
    {
      name: bad,
      contents: "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo flotilla-inside-failing; exit 3'\n",
    },
  ]);
  report.installed = inst;
  report.fileMode = (statSync(`${UNITS_DIR}/${ok}`).mode & 0o777).toString(8);

  // journal follow, started before the unit runs; `since` so that entries written while journalctl is
  // still starting up are not missed (a bare follow starts wherever the journal ends when it opens it)
  const journal = readJournal({ unit: ok, follow: true, since: new Date(t0 - 1000) });
  const lines: string[] = [];
  const seen = (async () => {
    for await (const e of journal) {
      lines.push(e.message);
      // The unit's output and PID 1's "Starting …" line come through different journald inputs, so
      // either may be stored first: wait for both. Breaking cancels: journalctl must be killed.
      if (lines.some((l) => l.startsWith('flotilla-inside')) && lines.some((l) => l.startsWith('Starting ')))
        break;
    }
  })();

  const w = mgr.watch({ units: [ok] });
  const events: UnitEvent[] = [];
  const activeSeen = (async () => {
    for await (const e of w) {
      events.push(e);
      if (e.type === 'changed' && e.state.activeState === 'active') break;
    }
  })();
  await new Promise((r) => setTimeout(r, 200));
  report.start = await mgr.start(ok);
  await activeSeen;
  const active = events.at(-1);
  report.event =
    active?.type === 'changed'
      ? {
          activeState: active.state.activeState,
          latencyMs: active.at - (active.state.stateChangeTimestamp ?? 0),
        }
      : null;
  await Promise.race([seen, new Promise((r) => setTimeout(r, 5000))]);
  await journal.close();
  report.journal = lines;
  report.childrenAfterJournal = children();
  report.state = await mgr.state(ok);

  try {
    await mgr.start(bad);
    report.failure = null;
  } catch (err) {
    report.failure =
      err instanceof SystemdJobError
        ? {
            result: err.result,
            unitResult: err.state?.result,
            status: err.state?.execMainStatus,
            journal: err.journal,
            message: err.message,
          }
        : String(err);
  }
  await mgr.uninstallMany([ok, bad]);
  report.after = (await mgr.states([ok, bad])).map((s) => s.loadState);
  report.calls = mgr.stats.calls;
} finally {
  await mgr.close();
}
report.childrenAtEnd = children();
report.ms = Date.now() - t0;
process.stdout.write(`${JSON.stringify(report)}\n`);
