/**
 * Coordinated reboots on real machines: flotilla.service in m1..m3 (etcd members in the machines,
 * agent_ttl 3 s), REBOOT_STRATEGY=etcd-lock with max 1, every machine told it needs a reboot at once
 * (`locksmithctl send-need-reboot`). A sampler on the host records, about every second, each
 * machine's boot ID (reachable or not), the lock holders (`locksmithctl status`) and where the
 * units run (`list-units`). Then, by those timestamps:
 *   - each machine rebooted exactly once (its boot ID changed), one at a time: the spans from
 *     "holds the lock" to "released it after the new boot" never overlap, and never is there more
 *     than one holder;
 *   - while a machine was away, every unit it ran before ran (active) on another machine.
 * And a real reboot window: a window that is closed now keeps the machine up; one open now lets it
 * reboot.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  allMachines,
  ctl,
  ctlOk,
  destroyUnits,
  freshCluster,
  inMachine,
  inMachineOk,
  listUnits,
  putFile,
  restoreMachines,
  sleep,
  sleepUnit,
  uniq,
  waitFor,
  writeUnit,
  type ClusterMap,
} from '../support/cluster.js';
import { describeSystemd, machineProject } from '../support/testbed.js';

const ETCD = '-endpoint=http://127.0.0.1:2379';
const CONF = '/etc/flotilla/update.conf';

interface Sample {
  t: number;
  boot: Map<string, string | undefined>;
  holders: string[] | undefined;
  /** unit → machine IDs where it is active */
  active: Map<string, string[]> | undefined;
}

async function bootId(m: string): Promise<string | undefined> {
  const r = await inMachine(m, 'cat', '/proc/sys/kernel/random/boot_id');
  return r.code === 0 ? r.stdout.trim() : undefined;
}

/** `locksmithctl status` (the real argv[0] alias) inside the first machine that answers. */
async function lockStatus(): Promise<{ available: number; max: number; holders: string[] } | undefined> {
  for (const m of allMachines) {
    const r = await inMachine(m, '/usr/local/bin/locksmithctl', ETCD, 'status');
    if (r.code !== 0) continue;
    const lines = r.stdout.split('\n');
    const available = Number(/^Available: (-?\d+)$/.exec(lines[0] ?? '')?.[1]);
    const max = Number(/^Max: (\d+)$/.exec(lines[1] ?? '')?.[1]);
    const i = lines.indexOf('MACHINE ID');
    const holders = i < 0 ? [] : lines.slice(i + 1).filter((l) => l !== '');
    return { available, max, holders };
  }
  return undefined;
}

async function activeUnits(units: readonly string[]): Promise<Map<string, string[]> | undefined> {
  for (const m of allMachines) {
    try {
      const rows = await listUnits(m);
      const out = new Map<string, string[]>();
      for (const u of units)
        out.set(
          u,
          rows.filter((r) => r.unit === u && r.active === 'active').map((r) => r.machineID),
        );
      return out;
    } catch {
      /* that machine is away: ask the next */
    }
  }
  return undefined;
}

async function writeConf(m: string, lines: string[]): Promise<void> {
  await putFile(m, CONF, `${lines.join('\n')}\n`);
}

describeSystemd('coordinated reboots on real machines (locksmith)', () => {
  let map: ClusterMap;
  const created: string[] = [];

  beforeAll(async () => {
    expect(allMachines.length, 'this needs 3 machines').toBeGreaterThanOrEqual(3);
    await restoreMachines();
    for (const m of allMachines) {
      await writeConf(m, [
        'REBOOT_STRATEGY=etcd-lock',
        'LOCKSMITHD_DRAIN_TIMEOUT=60s',
        'LOCKSMITHD_LOCK_TTL=120s',
      ]);
      await inMachineOk(m, 'rm', '-f', '/run/reboot-required');
      await inMachineOk(m, 'ln', '-sf', `${machineProject}/bin/flotilla`, '/usr/local/bin/locksmithctl');
    }
    map = await freshCluster(); // (re)starts the agents, which read update.conf
  }, 240_000);

  afterAll(async () => {
    await destroyUnits(allMachines, created.splice(0));
    for (const m of allMachines) await inMachine(m, 'rm', '-f', CONF, '/run/reboot-required');
    await restoreMachines();
  }, 180_000);

  it('three machines needing a reboot with max 1 reboot one at a time, their units running elsewhere meanwhile', async () => {
    const st = await lockStatus();
    expect(st).toEqual({ available: 1, max: 1, holders: [] });
    // One plain unit per machine (least-loaded spreads them) and a Global unit that stays everywhere.
    const units = [uniq('ls-a'), uniq('ls-b'), uniq('ls-c')].map((u) => `${u}.service`);
    const global = `${uniq('ls-g')}.service`;
    const cli = allMachines[0]!;
    const paths: string[] = [];
    for (const u of units) paths.push(await writeUnit(cli, u, sleepUnit()));
    paths.push(await writeUnit(cli, global, sleepUnit(['Global=true'])));
    created.push(...units, global);
    await ctlOk(cli, 'start', ...paths);
    const before = await waitFor(
      'the three units active on three machines',
      async () => {
        const a = await activeUnits(units);
        const where = units.map((u) => a?.get(u) ?? []);
        return where.every((w) => w.length === 1) && new Set(where.flat()).size === 3 ? a : undefined;
      },
      60_000,
      500,
    );
    const unitsOf = new Map<string, string[]>(); // machine ID → its units before the reboots
    for (const u of units) {
      const id = before.get(u)![0]!;
      unitsOf.set(id, [...(unitsOf.get(id) ?? []), u]);
    }
    const boot0 = new Map<string, string | undefined>();
    for (const m of allMachines) boot0.set(m, await bootId(m));

    for (const m of allMachines) expect((await ctl(m, 'locksmith', 'send-need-reboot')).code).toBe(0);
    const t0 = Date.now();
    const samples: Sample[] = [];
    const done = () =>
      allMachines.every((m) => {
        const last = samples[samples.length - 1];
        const b = last?.boot.get(m);
        return b !== undefined && b !== boot0.get(m);
      }) && samples[samples.length - 1]?.holders?.length === 0;
    while (Date.now() - t0 < 240_000) {
      const t = Date.now();
      const [boots, holders, active] = await Promise.all([
        Promise.all(allMachines.map(async (m) => [m, await bootId(m)] as const)),
        lockStatus().then((s) => s?.holders),
        activeUnits(units),
      ]);
      samples.push({ t, boot: new Map(boots), holders, active });
      if (done()) break;
      await sleep(300);
    }
    const report = samples
      .map(
        (s) =>
          `${s.t - t0}ms holders=${JSON.stringify(s.holders?.map((h) => map.name(h)))} ` +
          `boot=${allMachines.map((m) => (s.boot.get(m) === undefined ? `${m}:down` : s.boot.get(m) === boot0.get(m) ? `${m}:old` : `${m}:new`)).join(',')} ` +
          `active=${JSON.stringify([...(s.active ?? new Map<string, string[]>())].map(([u, ms]) => [u.slice(0, 6), ms.map((i) => map.name(i))]))}`,
      )
      .join('\n');
    console.log(`[locksmith] samples:\n${report}`);
    expect(done(), `every machine rebooted and the lock is free again\n${report}`).toBe(true);

    // Never two holders; each machine held the lock in one span; the spans do not overlap.
    expect(
      samples.every((s) => (s.holders?.length ?? 0) <= 1),
      report,
    ).toBe(true);
    const spans = allMachines.map((m) => {
      const id = map.id(m);
      const held = samples.filter((s) => s.holders?.includes(id));
      const rebootedAt = samples.find((s) => s.boot.get(m) !== boot0.get(m))?.t;
      expect(held.length, `${m} was seen holding the lock\n${report}`).toBeGreaterThan(0);
      return { m, id, from: held[0]!.t, to: held[held.length - 1]!.t, rebootedAt: rebootedAt! };
    });
    spans.sort((a, b) => a.from - b.from);
    for (let i = 1; i < spans.length; i++) {
      expect(
        spans[i]!.from,
        `${spans[i]!.m} took the lock after ${spans[i - 1]!.m} released it\n${report}`,
      ).toBeGreaterThan(spans[i - 1]!.to);
    }
    for (const s of spans) {
      // It rebooted while it held the lock (the first sample with its new boot ID, or away).
      expect(s.rebootedAt, `${s.m} rebooted while holding the lock\n${report}`).toBeGreaterThanOrEqual(
        s.from,
      );
      expect(s.rebootedAt).toBeLessThanOrEqual(s.to);
      // Each boot ID changed exactly once: old … (down) … new, never old again.
      const seq = samples.map((x) => x.boot.get(s.m)).filter((b) => b !== undefined);
      const firstNew = seq.findIndex((b) => b !== boot0.get(s.m));
      expect(
        seq.slice(firstNew).every((b) => b === seq[firstNew]),
        `${s.m} rebooted once\n${report}`,
      ).toBe(true);
      // While it was away (from its reboot until it released the lock), its units ran elsewhere.
      const away = samples.filter((x) => x.t >= s.rebootedAt && x.t <= s.to && x.active !== undefined);
      expect(away.length, `samples while ${s.m} was away\n${report}`).toBeGreaterThan(0);
      for (const x of away) {
        for (const u of unitsOf.get(s.id) ?? []) {
          const on = x.active!.get(u) ?? [];
          expect(
            on.length === 1 && on[0] !== s.id,
            `${u} (from ${s.m}) active elsewhere at ${x.t - t0} ms\n${report}`,
          ).toBe(true);
        }
      }
    }
    // The Global unit runs everywhere again, and every machine is schedulable.
    await waitFor(
      'the Global unit active on every machine',
      async () => ((await activeUnits([global]))?.get(global)?.length ?? 0) === allMachines.length,
      60_000,
      500,
    );
  }, 300_000);

  it('a reboot window that is closed now keeps the machine up; one that is open now lets it reboot', async () => {
    const m = allMachines[0]!;
    const now = new Date();
    const hhmm = (d: Date) =>
      `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
    const closed = hhmm(new Date(now.getTime() + 3 * 3600_000)); // opens in 3 h, for 30 min
    const open = hhmm(new Date(now.getTime() - 10 * 60_000)); // opened 10 min ago, for 1 h
    await writeConf(m, [
      'REBOOT_STRATEGY=reboot',
      `LOCKSMITHD_REBOOT_WINDOW_START=${closed}`,
      'LOCKSMITHD_REBOOT_WINDOW_LENGTH=30m',
      'LOCKSMITHD_WINDOW_ZONE=utc',
    ]);
    await inMachineOk(m, 'systemctl', 'restart', 'flotilla');
    const boot = await bootId(m);
    await ctlOk(m, 'locksmith', 'send-need-reboot');
    await waitFor(
      'the agent to log that it waits for the window',
      async () =>
        (await inMachine(m, 'journalctl', '-u', 'flotilla', '--no-pager', '-n', '50')).stdout.includes(
          'outside the reboot window',
        ),
      30_000,
      500,
    );
    await sleep(6000); // three manager passes
    expect(await bootId(m)).toBe(boot);
    await writeConf(m, [
      'REBOOT_STRATEGY=reboot',
      `LOCKSMITHD_REBOOT_WINDOW_START=${open}`,
      'LOCKSMITHD_REBOOT_WINDOW_LENGTH=1h',
      'LOCKSMITHD_WINDOW_ZONE=utc',
    ]);
    await inMachineOk(m, 'systemctl', 'restart', 'flotilla');
    const t = Date.now();
    const next = await waitFor(
      'the machine to reboot inside the open window',
      async () => {
        const b = await bootId(m);
        return b !== undefined && b !== boot ? b : undefined;
      },
      60_000,
      300,
    );
    expect(next).not.toBe(boot);
    console.log(`[locksmith] rebooted ${Date.now() - t} ms after the window opened for it`);
    await waitFor('the agent back', async () => (await ctl(m, 'list-machines')).code === 0, 60_000, 500);
  }, 180_000);
});
