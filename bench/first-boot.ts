/**
 * `npm run bench -- first-boot [--runs 3]`
 *
 * First boot in a real QEMU VM (test/env/vm, TCG here): time from power-on (QEMU started) to
 *   - ssh answering and systemd reporting running/degraded, for the VM booted without a config;
 *   - the agent registered (`fleetctl list-machines` inside lists this machine) for the same VM
 *     booted with a config drive holding a cloud-config with coreos.etcd2 and coreos.fleet.
 * The second case needs `flotilla cloudinit` and systemd/flotilla-cloudinit.service in the build;
 * without them the table says so instead of a number. Needs root and QEMU; boots one VM at a time.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootVm, stopVm, type Vm, type VmOptions } from '../test/support/vm.js';
import { summarize } from './stats.js';
import { printTable } from './table.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const NAME = 'fbbench';

const CLOUD_CONFIG = `#cloud-config
coreos:
  etcd2:
    name: fbbench
    data-dir: /var/lib/etcd-member
    listen-client-urls: http://127.0.0.1:2379
    advertise-client-urls: http://127.0.0.1:2379
    listen-peer-urls: http://127.0.0.1:2380
    initial-advertise-peer-urls: http://127.0.0.1:2380
    initial-cluster: fbbench=http://127.0.0.1:2380
    initial-cluster-state: new
  fleet:
    etcd_servers: http://127.0.0.1:2379
    metadata: bench=first-boot
`;

async function waitFor(
  vm: Vm,
  script: string,
  ok: (out: string) => boolean,
  limitMs: number,
): Promise<number> {
  const end = Date.now() + limitMs;
  for (;;) {
    const r = await vm.sh(script, { timeoutMs: 60_000 });
    if (r.code === 0 && ok(r.stdout)) return Date.now();
    if (Date.now() > end)
      throw new Error(`VM ${vm.name}: "${script}" not there after ${limitMs} ms: ${r.stdout}${r.stderr}`);
    await new Promise((res) => setTimeout(res, 500));
  }
}

async function once(opts: VmOptions, registered: boolean): Promise<{ ssh: number; ready: number }> {
  const vm = await bootVm(NAME, opts);
  try {
    const ssh = vm.sshMs - vm.startedMs;
    const done = registered
      ? await waitFor(vm, 'fleetctl list-machines --no-legend', (o) => o.trim() !== '', 300_000)
      : await waitFor(vm, 'systemctl is-system-running --wait', (o) => /running|degraded/.test(o), 300_000);
    return { ssh, ready: done - vm.startedMs };
  } finally {
    await stopVm(NAME);
  }
}

export default async function firstBoot(args: string[]): Promise<void> {
  const i = args.indexOf('--runs');
  const runs = i >= 0 ? Number(args[i + 1]) : 3;
  if (!Number.isInteger(runs) || runs < 1)
    throw new Error(`--runs must be a positive integer (got ${args[i + 1]})`);
  if (process.getuid?.() !== 0) throw new Error('first-boot bench needs root (test/env/vm)');

  const plainSsh: number[] = [];
  const plainReady: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t = await once({}, false);
    plainSsh.push(t.ssh);
    plainReady.push(t.ready);
    console.error(`[first-boot] no config, run ${r + 1}: ssh ${t.ssh} ms, systemd ready ${t.ready} ms`);
  }

  const rows: (string | number)[][] = [];
  const row = (what: string, ms: number[]): void => {
    const s = summarize(ms.map((x) => x / 1000));
    rows.push([what, String(s.n), s.min, s.p50, s.max, 's']);
  };
  row('no config: power-on -> ssh', plainSsh);
  row('no config: power-on -> systemd running', plainReady);

  const hasFirstBoot =
    existsSync(join(root, 'dist/cli/commands/cloudinit.js')) &&
    existsSync(join(root, 'systemd/flotilla-cloudinit.service'));
  if (hasFirstBoot) {
    const work = mkdtempSync(join(tmpdir(), 'flotilla-fb-'));
    try {
      mkdirSync(join(work, 'openstack/latest'), { recursive: true });
      writeFileSync(join(work, 'openstack/latest/user_data'), CLOUD_CONFIG);
      writeFileSync(join(work, 'openstack/latest/meta_data.json'), JSON.stringify({ hostname: NAME }));
      const reg: number[] = [];
      for (let r = 0; r < runs; r++) {
        const t = await once({ configDrive: work }, true);
        reg.push(t.ready);
        console.error(`[first-boot] config drive, run ${r + 1}: agent registered ${t.ready} ms`);
      }
      row('config drive: power-on -> agent registered', reg);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  } else {
    rows.push([
      'config drive: power-on -> agent registered',
      0,
      '-',
      '-',
      '-',
      'n/a: no flotilla cloudinit in this build',
    ]);
  }
  printTable(
    `first boot in a QEMU VM (${runs} runs each, TCG unless KVM is usable)`,
    ['measure', 'n', 'min', 'median', 'max', 'unit'],
    rows,
  );
}
