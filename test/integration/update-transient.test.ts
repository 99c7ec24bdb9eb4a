/**
 * The slot write in its throttled transient unit, in a real systemd (an nspawn machine): the
 * host serves a signed bundle on the machines' network, `flotilla update apply` runs inside the
 * machine (CLI from this checkout through tsx), creates `flotilla-update-write.service` over
 * D-Bus, and while it writes `systemctl show` reports the configured IOWeight=, CPUWeight=,
 * Nice= and IOWriteBandwidthMax=. Afterwards the disk image (made by sgdisk on the host) has the
 * new image in slot B, flagged as the trial slot.
 */
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateSigningKey } from '../../src/update/bundle.js';
import { makeBundle } from '../../src/update/make-bundle.js';
import { holdReboots } from '../support/hold-reboots.js';
import {
  describeSystemd,
  envDir,
  hostIp,
  machineExec,
  machineProject,
  machines,
} from '../support/testbed.js';
import { coreosImage, scratch, sgdisk, sgdiskBits, type Scratch } from '../unit/update/disk-image.js';

const m = machines[0] ?? 'm1';
const MiB = 1024 * 1024;
const DIR = '/var/tmp/flotilla-update-it';
// tsx as the machine sees it: the checkout is mounted at machineProject there, not at its host path.
const REPO = join(import.meta.dirname, '..', '..');
const TSX = pathToFileURL(
  join(machineProject, relative(REPO, createRequire(import.meta.url).resolve('tsx'))),
).href;
const ENTRY = join(machineProject, 'test/unit/cli/cli-entry.ts');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Copy a host file into the machine through exec.sh's stdin (no shared writable directory). */
function put(file: string, dest: string): void {
  execFileSync('bash', [join(envDir, 'exec.sh'), m, 'sh', '-c', 'cat > "$1"', 'sh', dest], {
    input: readFileSync(file),
    stdio: ['pipe', 'ignore', 'pipe'],
  });
}
function get(src: string): Buffer {
  return execFileSync('bash', [join(envDir, 'exec.sh'), m, 'cat', src], { maxBuffer: 256 * MiB });
}

describeSystemd('update: the slot write in a throttled transient unit', () => {
  let s: Scratch;
  let server: Server;
  let image: Buffer;

  beforeAll(async () => {
    s = scratch();
    coreosImage(join(s.dir, 'disk.img'));
    image = Buffer.concat([Buffer.alloc(3 * MiB, 0x11), Buffer.alloc(3 * MiB, 0x77)]);
    writeFileSync(join(s.dir, 'image'), image);
    const key = generateSigningKey();
    writeFileSync(join(s.dir, 'k.pub'), key.publicPem);
    await makeBundle({
      image: join(s.dir, 'image'),
      outDir: join(s.dir, 'srv'),
      key: key.privatePem,
      version: '9.9.9',
      board: 'amd64-usr',
      arch: 'amd64',
      compression: 'gzip',
    });
    server = createServer((req, res) => {
      const name = (req.url ?? '').replace(/^\//, '');
      if (!['manifest.json', 'payload.img.gz'].includes(name)) {
        res.statusCode = 404;
        res.end();
        return;
      }
      res.end(readFileSync(join(s.dir, 'srv', name)));
    });
    await new Promise<void>((r) => server.listen(0, hostIp ?? '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    machineExec(m, 'sh', '-c', `rm -rf ${DIR} && mkdir -p ${DIR}/keys`);
    put(join(s.dir, 'disk.img'), `${DIR}/disk.img`);
    put(join(s.dir, 'k.pub'), `${DIR}/keys/k.pub`);
    writeFileSync(
      join(s.dir, 'update.conf'),
      [
        `SERVER=http://${hostIp}:${port}/manifest.json`,
        'CURRENT_VERSION=1.0.0',
        `UPDATE_DISK=${DIR}/disk.img`,
        `UPDATE_GRUBENV=${DIR}/grubenv`,
        `UPDATE_KEYS_DIR=${DIR}/keys`,
        `UPDATE_STAGING_DIR=${DIR}/staging`,
        'UPDATE_IO_WEIGHT=42',
        'UPDATE_CPU_WEIGHT=7',
        'UPDATE_NICE=15',
        'UPDATE_IO_WRITE_BANDWIDTH_MAX=50M',
        // A 6 MiB image at 2 MiB/s: a few seconds in which the unit can be looked at.
        'UPDATE_WRITE_RATE_LIMIT=2M',
        '',
      ].join('\n'),
    );
    put(join(s.dir, 'update.conf'), `${DIR}/update.conf`);
    // A cluster agent left running in m by another test file would see /run/reboot-required after
    // the apply and reboot m (strategy reboot, its default): turn its reboots off for this test.
    unholdReboots = await holdReboots(m);
  });

  let unholdReboots: () => void = () => undefined;

  afterAll(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    try {
      machineExec(m, 'rm', '-rf', DIR, '/run/reboot-required');
      unholdReboots();
    } catch {
      /* machine gone */
    }
    s?.cleanup();
  });

  it('runs write-slot in flotilla-update-write.service with the configured limits, and the write completes', async () => {
    const apply = spawn(
      'bash',
      [
        join(envDir, 'exec.sh'),
        m,
        'node',
        '--import',
        TSX,
        ENTRY,
        'update',
        'apply',
        '--booted=A',
        `--config=${DIR}/update.conf`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    apply.stdout.on('data', (d: Buffer) => (out += d.toString()));
    apply.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => apply.once('exit', r));
    let props: Record<string, string> | undefined;
    let done = false;
    void exited.then(() => (done = true));
    const deadline = Date.now() + 60_000;
    while (!done && Date.now() < deadline) {
      const show = machineExec(
        m,
        'systemctl',
        'show',
        'flotilla-update-write.service',
        '-p',
        'ActiveState,SubState,IOWeight,CPUWeight,Nice,IOWriteBandwidthMax,ExecStart,Type',
      );
      const p = Object.fromEntries(
        show
          .trim()
          .split('\n')
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
      if (p.ActiveState === 'activating') {
        props = p;
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    const code = await exited;
    expect(out).toMatch(/reboot needed/);
    expect(code).toBe(0);
    expect(props, `the unit was never seen running; apply said: ${out}`).toBeDefined();
    expect(props).toMatchObject({ Type: 'oneshot', IOWeight: '42', CPUWeight: '7', Nice: '15' });
    expect(props!.IOWriteBandwidthMax).toMatch(/52428800/);
    expect(props!.ExecStart).toMatch(
      /update write-slot --disk=\/var\/tmp\/flotilla-update-it\/disk.img --booted=A/,
    );
    // The unit is collected after it finished.
    expect(
      machineExec(m, 'systemctl', 'show', 'flotilla-update-write.service', '-p', 'LoadState').trim(),
    ).toBe('LoadState=not-found');
    // The disk, back on the host: slot B holds the image, flagged priority 2 tries 1 (A: 1, good).
    const disk = join(s.dir, 'after.img');
    writeFileSync(disk, get(`${DIR}/disk.img`));
    const first = Number(/First sector: (\d+)/.exec(sgdisk('-i4', disk))![1]) * 512;
    expect(sha(readFileSync(disk).subarray(first, first + image.length))).toBe(sha(image));
    expect(sgdiskBits(disk, 4)).toEqual([49, 52]);
    expect(sgdiskBits(disk, 3)).toEqual([48, 56]);
    expect(
      machineExec(m, 'node', '--import', TSX, ENTRY, 'update', 'status', `--config=${DIR}/update.conf`),
    ).toMatch(/CURRENT_OP=UPDATE_STATUS_UPDATED_NEED_REBOOT\nNEW_VERSION=9\.9\.9\n/);
    expect(machineExec(m, 'cat', '/run/reboot-required')).toMatch(/restart required/);
  }, 120_000);
});
