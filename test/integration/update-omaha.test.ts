/**
 * The Omaha transport end to end, in a real machine (nspawn m1 of test/env): the host runs
 * test/env/omaha-server.mjs on the machines' bridge address (TESTENV_HOST_IP, an address
 * test/env created; nothing leaves the host), and `update_engine_client` (the CLI from this
 * checkout through tsx, by argv[0] as a symlink, the way the installed tree links it) runs inside
 * m1 against a 64 MiB sgdisk image file with USR-A/USR-B. Checked:
 *   - the request fields (appid, version, track = GROUP, machineid and bootid of m1, board, sp);
 *   - an Omaha answer whose sha256 disagrees with the signed manifest, and a signed manifest that
 *     was tampered with: E_UPDATE_VERIFY, the payload is never fetched, slot B keeps its bytes,
 *     the server gets event 3/0 with update_engine's error code (10 hash mismatch, 12 signature);
 *   - `-check_for_update` then `-status` and `-watch_for_updates`: the update is downloaded,
 *     verified and written to slot B in the throttled transient unit, UPDATED_NEED_REBOOT, events
 *     13/1, 14/1, 800/1 in order; after the "reboot" (reset and the new version) the check reports 3/2.
 * A cluster agent left running in m1 by another file would reboot m1 on /run/reboot-required:
 * its reboots are turned off for the file (a real reload) and restored after.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { generateSigningKey, hostArch } from '../../src/update/bundle.js';
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
import {
  coreosImage,
  scratch,
  sgdisk,
  sgdiskBits,
  USR_A_GUID,
  type Scratch,
} from '../unit/update/disk-image.js';

const run = promisify(execFile);
const m = machines[0] ?? 'm1';
const MiB = 1024 * 1024;
const DIR = '/var/tmp/flotilla-omaha-it';
const REPO = join(import.meta.dirname, '..', '..');
const TSX = pathToFileURL(
  join(machineProject, relative(REPO, createRequire(import.meta.url).resolve('tsx'))),
).href;
const ENTRY = join(machineProject, 'test/unit/cli/cli-entry.ts');
const UEC = `${DIR}/update_engine_client`;
const APPID = '{e96281a6-d1af-4bde-9a0a-97b76e56dc57}';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface OmahaServer {
  pid: number;
  /** http://HOST:PORT/ */
  base: string;
  /** The Omaha endpoint, http://HOST:PORT/v1/update/ */
  url: string;
}

async function put(file: string, dest: string): Promise<void> {
  const p = run('bash', [join(envDir, 'exec.sh'), m, 'sh', '-c', 'cat > "$1"', 'sh', dest]);
  p.child.stdin!.end(readFileSync(file));
  await p;
}

/** Run argv in m1; never throws, gives the exit code and both streams. */
function inMachine(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((res) => {
    execFile(
      'bash',
      [join(envDir, 'exec.sh'), m, ...argv],
      { timeout: 120_000, maxBuffer: 128 * MiB, encoding: 'utf8' },
      (err, out, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : -1
          : 0;
        res({ code, out, err: stderr });
      },
    );
  });
}

describeSystemd(
  'update over Omaha in a machine (update_engine_client, Omaha server on the testenv bridge)',
  () => {
    let s: Scratch;
    let good: OmahaServer;
    let tampered: OmahaServer;
    let image: Buffer;
    let slotFirst = 0;
    let slotBefore = '';
    let machineId = '';
    let unholdReboots: () => void = () => undefined;
    const servers: number[] = [];
    let watch: ChildProcess | undefined;

    /** The settings as update.conf keys; the environment overlays update.conf, same names. */
    const settings = (server: OmahaServer, version = '1.0.0') => [
      `SERVER=${server.url}`,
      'GROUP=beta',
      `CURRENT_VERSION=${version}`,
      `UPDATE_DISK=${DIR}/disk.img`,
      `UPDATE_GRUBENV=${DIR}/grubenv`,
      `UPDATE_KEYS_DIR=${DIR}/keys`,
      `UPDATE_STAGING_DIR=${DIR}/staging`,
    ];
    /**
     * argv in m1 as booted from USR-A: a private mount namespace whose /proc/cmdline says
     * mount.usr=PARTUUID=<USR-A> as CoreOS's grub.cfg does (the machine's own names no slot).
     */
    const bootedA = (...argv: string[]) => [
      'unshare',
      '-m',
      'sh',
      '-c',
      'mount --bind "$1" /proc/cmdline && shift && exec "$@"',
      'sh',
      `${DIR}/cmdline`,
      ...argv,
    ];
    const uecArgv = (server: OmahaServer, flag: string, version?: string) =>
      bootedA('env', ...settings(server, version), 'node', '--import', TSX, UEC, flag);
    const uec = (server: OmahaServer, flag: string, version?: string) =>
      inMachine(...uecArgv(server, flag, version));
    const requests = (o: OmahaServer) =>
      fetch(`${o.base}requests`).then((r) => r.json() as Promise<string[]>);
    const fetches = (o: OmahaServer) => fetch(`${o.base}fetches`).then((r) => r.json() as Promise<string[]>);
    const mode = (o: OmahaServer, v: string) =>
      fetch(`${o.base}mode`, { method: 'PUT', body: v }).then((r) => r.text());
    const events = (body: string) =>
      [...body.matchAll(/<event ([^>]*)\/>/g)].map((e) => {
        const a: Record<string, string> = Object.fromEntries(
          [...e[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]),
        );
        return [a['eventtype'], a['eventresult'], a['errorcode'], a['previousversion']]
          .filter((x) => x !== undefined)
          .join('/');
      });
    /** SHA-256 of slot B's first image.length bytes, read inside m1. */
    const slotSha = async () => {
      const r = await inMachine(
        'sh',
        '-c',
        'tail -c +"$2" "$1" | head -c "$3" | sha256sum',
        'sh',
        `${DIR}/disk.img`,
        String(slotFirst + 1),
        String(image.length),
      );
      return r.out.split(' ')[0]!;
    };

    /**
     * The server outlives the tests of this file, so it runs in the background of a shell that exits
     * (no child of the test worker for settled.ts to flag); afterAll kills it by its pid.
     */
    async function startServer(bundle: string, initial: string): Promise<OmahaServer> {
      const log = join(s.dir, `omaha-${servers.length}.log`);
      const pid = Number(
        (
          await run('sh', [
            '-c',
            'log=$1; shift; "$@" > "$log" 2>&1 < /dev/null & echo $!',
            'sh',
            log,
            process.execPath,
            join(REPO, 'test/env/omaha-server.mjs'),
            '--bundle',
            bundle,
            '--mode',
            initial,
            '--host',
            hostIp!,
          ])
        ).stdout.trim(),
      );
      servers.push(pid);
      let text = '';
      for (let t = Date.now(); !/listening on (\S+)/.test(text); await sleep(100)) {
        if (Date.now() - t > 30_000) throw new Error(`omaha-server did not start: ${text}`);
        text = existsSync(log) ? readFileSync(log, 'utf8') : '';
      }
      const url = /listening on (\S+)/.exec(text)![1]!;
      return { pid, url, base: url.replace(/v1\/update\/$/, '') };
    }

    beforeAll(async () => {
      if (!hostIp)
        throw new Error('test/env gives no TESTENV_HOST_IP (the host address on the machines network)');
      s = scratch();
      const disk = coreosImage(join(s.dir, 'disk.img'));
      slotFirst = Number(/First sector: (\d+)/.exec(sgdisk('-i4', disk))![1]) * 512;
      image = Buffer.concat([Buffer.alloc(2 * MiB, 0x5a), Buffer.alloc(2 * MiB, 0xa5)]);
      writeFileSync(join(s.dir, 'image'), image);
      const key = generateSigningKey();
      writeFileSync(join(s.dir, 'k.pub'), key.publicPem);
      await makeBundle({
        image: join(s.dir, 'image'),
        outDir: join(s.dir, 'srv'),
        key: key.privatePem,
        version: '9.9.9',
        board: 'amd64-usr',
        arch: hostArch(),
        compression: 'gzip',
      });
      // The same bundle with one signed field changed after signing (the signature no longer holds).
      cpSync(join(s.dir, 'srv'), join(s.dir, 'srv-tampered'), { recursive: true });
      const mf = join(s.dir, 'srv-tampered', 'manifest.json');
      const env = JSON.parse(readFileSync(mf, 'utf8')) as { signed: { version: string } };
      env.signed.version = '9.9.10';
      writeFileSync(mf, JSON.stringify(env));
      good = await startServer(join(s.dir, 'srv'), 'noupdate');
      tampered = await startServer(join(s.dir, 'srv-tampered'), 'update');
      machineExec(
        m,
        'sh',
        '-c',
        'rm -rf "$1" && mkdir -p "$1/keys" && ln -s "$2" "$1/update_engine_client"',
        'sh',
        DIR,
        ENTRY,
      );
      await put(disk, `${DIR}/disk.img`);
      await put(join(s.dir, 'k.pub'), `${DIR}/keys/k.pub`);
      // The same settings as a file, for `flotilla update apply --config`.
      writeFileSync(join(s.dir, 'update.conf'), [...settings(good), ''].join('\n'));
      await put(join(s.dir, 'update.conf'), `${DIR}/update.conf`);
      writeFileSync(
        join(s.dir, 'cmdline'),
        `BOOT_IMAGE=/coreos/vmlinuz-a mount.usr=PARTUUID=${USR_A_GUID} ro\n`,
      );
      await put(join(s.dir, 'cmdline'), `${DIR}/cmdline`);
      machineId = machineExec(m, 'cat', '/etc/machine-id').trim();
      slotBefore = await slotSha();
      expect(slotBefore).not.toBe(sha(image));
      unholdReboots = await holdReboots(m);
    }, 60_000);

    /** End the watch: its `timeout` in m1 by pid (it passes SIGTERM on), then the host side. */
    async function stopWatch(): Promise<void> {
      const w = watch;
      if (!w || w.exitCode !== null || w.signalCode !== null) return;
      const exited = new Promise((r) => w.once('exit', r));
      try {
        machineExec(m, 'sh', '-c', '[ -s "$1/watch.pid" ] && kill "$(cat "$1/watch.pid")"; true', 'sh', DIR);
      } catch {
        /* machine gone */
      }
      const t = setTimeout(() => w.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }

    afterEach(stopWatch);

    afterAll(() => {
      for (const pid of servers)
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          /* gone */
        }
      try {
        machineExec(m, 'rm', '-rf', DIR, '/run/reboot-required');
        unholdReboots();
      } catch {
        /* machine gone */
      }
      s?.cleanup();
    });

    it('noupdate: -update exits 1, -status is IDLE; the request carries appid, version, track, machineid', async () => {
      const r = await uec(good, '-update');
      expect(r.err).toBe('');
      expect(r.out).toBe('No update available\n');
      expect(r.code).toBe(1);
      const st = await uec(good, '-status');
      expect(st.out).toMatch(
        /^LAST_CHECKED_TIME=[1-9]\d+\nPROGRESS=0\.000000\nCURRENT_OP=UPDATE_STATUS_IDLE\nNEW_VERSION=0\.0\.0\nNEW_SIZE=0\n$/,
      );
      const reqs = await requests(good);
      expect(reqs).toHaveLength(1);
      const req = reqs[0]!;
      const bootId = machineExec(m, 'cat', '/proc/sys/kernel/random/boot_id').trim();
      expect(req).toMatch(/<request protocol="3\.0" [^>]*installsource="ondemandupdate" ismachine="1"/);
      expect(req).toContain(`<os version="Chateau" platform="CoreOS" sp="1.0.0_${hostArch()}"/>`);
      expect(req).toContain(
        `<app appid="${APPID}" version="1.0.0" track="beta" bootid="{${bootId}}" machineid="${machineId}" lang="en-US" board="amd64-usr" hardware_class="" delta_okay="false">`,
      );
      expect(machineId).toMatch(/^[0-9a-f]{32}$/);
      expect(req).toContain('<ping active="1"/>');
      expect(req).toContain('<updatecheck/>');
      expect(events(req)).toEqual([]);
      expect(await fetches(good)).toEqual([]);
    }, 60_000);

    it('an Omaha sha256 that disagrees with the signed manifest: E_UPDATE_VERIFY, payload never fetched, slot B untouched, event 3/0', async () => {
      await mode(good, 'update');
      const answer = await (await fetch(good.url, { method: 'POST', body: '<updatecheck/>' })).text();
      const wrong = Buffer.alloc(32, 7).toString('base64');
      // The postinstall action's sha256= (not the packages' hash_sha256=).
      const bad = answer.replace(/ sha256="[^"]+"/, ` sha256="${wrong}"`);
      expect(bad).not.toBe(answer);
      await mode(good, `raw:${bad}`);
      const before = (await requests(good)).length;
      const f0 = (await fetches(good)).length;
      const r = await inMachine(
        ...bootedA('node', '--import', TSX, ENTRY, 'update', 'apply', `--config=${DIR}/update.conf`),
      );
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(
        /update: E_UPDATE_VERIFY: Omaha and the signed manifest disagree on the payload sha256: Omaha [0-9a-f]{64}/,
      );
      expect((await fetches(good)).slice(f0)).toEqual(['manifest.json']);
      expect(await slotSha()).toBe(slotBefore);
      const after = (await requests(good)).slice(before);
      // errorcode 10: update_engine's kPayloadHashMismatchError.
      expect(after.map(events)).toEqual([[], ['3/0/10']]);
      // Back to IDLE with the error kept (the state -status prints), and nothing staged.
      const st = JSON.parse((await inMachine('cat', `${DIR}/staging/status.json`)).out) as Record<
        string,
        unknown
      >;
      expect(st).toMatchObject({ status: 'UPDATE_STATUS_IDLE', newVersion: '0.0.0' });
      expect(st['lastError']).toMatch(/^E_UPDATE_VERIFY: /);
      expect((await inMachine('ls', `${DIR}/staging`)).out).not.toMatch(/payload/);
    }, 60_000);

    it('a signed manifest tampered with: E_UPDATE_VERIFY (signature), payload never fetched, slot B untouched, event 3/0', async () => {
      const r = await uec(tampered, '-update');
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(/update: E_UPDATE_VERIFY: .*signature/i);
      expect(await fetches(tampered)).toEqual(['manifest.json']);
      expect(await slotSha()).toBe(slotBefore);
      // errorcode 12: update_engine's kDownloadPayloadVerificationError.
      expect((await requests(tampered)).map(events)).toEqual([[], ['3/0/12']]);
    }, 60_000);

    it('-check_for_update: downloaded, verified, written to slot B in the transient unit; -status and -watch_for_updates; events 13, 14, 800', async () => {
      await mode(good, 'update');
      const before = (await requests(good)).length;
      const f0 = (await fetches(good)).length;
      watch = spawn(
        'bash',
        [
          join(envDir, 'exec.sh'),
          m,
          'sh',
          '-c',
          'echo $$ > "$1/watch.pid"; shift; exec timeout 90 "$@"',
          'sh',
          DIR,
          ...uecArgv(good, '-watch_for_updates'),
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let watched = '';
      let watchErr = '';
      watch.stdout!.on('data', (d: Buffer) => (watched += d.toString()));
      watch.stderr!.on('data', (d: Buffer) => (watchErr += d.toString()));
      for (let t = Date.now(); !watchErr.includes('Watching for status updates.') && Date.now() - t < 30_000;)
        await sleep(100);
      expect(watchErr).toBe('Watching for status updates.\n');
      // Nothing until the state changes, as the original printed nothing before a StatusUpdate signal.
      expect(watched).toBe('');

      const prior = (await inMachine('cat', `${DIR}/staging/status.json`)).out;
      const r = await uec(good, '-check_for_update');
      expect(r).toEqual({ code: 0, out: '', err: '' });
      // The update runs detached; wait until its run (another pid) is done, either way.
      let status = prior;
      for (let t = Date.now(); Date.now() - t < 60_000; await sleep(500)) {
        status = (await inMachine('cat', `${DIR}/staging/status.json`)).out;
        if (status !== prior && /NEED_REBOOT|"UPDATE_STATUS_IDLE"/.test(status)) break;
      }
      expect(status).toMatch(/UPDATE_STATUS_UPDATED_NEED_REBOOT/);
      const st = await uec(good, '-status');
      expect(st.out).toMatch(
        /^LAST_CHECKED_TIME=[1-9]\d+\nPROGRESS=1\.000000\nCURRENT_OP=UPDATE_STATUS_UPDATED_NEED_REBOOT\nNEW_VERSION=9\.9\.9\nNEW_SIZE=\d+\n$/,
      );
      const size = /NEW_SIZE=(\d+)/.exec(st.out)![1]!;
      expect(Number(size)).toBe(readFileSync(join(s.dir, 'srv', 'payload.img.gz')).length);
      for (let t = Date.now(); !watched.includes('UPDATED_NEED_REBOOT') && Date.now() - t < 10_000;)
        await sleep(100);
      await stopWatch();

      // The watch: one block per change, the last one the need-reboot state.
      const blocks = watched.split(/(?=^Got status update:\n)/m);
      for (const b of blocks)
        expect(b).toMatch(
          /^Got status update:\n {2}last_checked_time: \d+\n {2}progress: (0|1|0\.\d{1,6}|\de-0\d)\n {2}current_operation: UPDATE_STATUS_[A-Z_]+\n {2}new_version: [\d.]+\n {2}new_size: \d+\n$/,
        );
      const ops = blocks.map((b) => /current_operation: (\S+)/.exec(b)![1]);
      expect(ops.at(-1)).toBe('UPDATE_STATUS_UPDATED_NEED_REBOOT');
      expect(ops).not.toContain('UPDATE_STATUS_REPORTING_ERROR_EVENT');
      expect(blocks.at(-1)).toBe(
        `Got status update:\n  last_checked_time: ${/LAST_CHECKED_TIME=(\d+)/.exec(st.out)![1]}\n  progress: 1\n` +
          `  current_operation: UPDATE_STATUS_UPDATED_NEED_REBOOT\n  new_version: 9.9.9\n  new_size: ${size}\n`,
      );

      // Omaha saw: the check, then 13/1, 14/1, 800/1, one event a request, in this order.
      const after = (await requests(good)).slice(before);
      expect(after.map(events)).toEqual([[], ['13/1'], ['14/1'], ['800/1']]);
      expect(after[0]).toContain('<updatecheck/>');
      expect(after.slice(1).every((b) => !b.includes('<updatecheck'))).toBe(true);
      expect(after.every((b) => b.includes(`machineid="${machineId}"`) && b.includes('track="beta"'))).toBe(
        true,
      );
      // The check reads the signed manifest, the download reads (and verifies) it again, then the payload.
      expect((await fetches(good)).slice(f0)).toEqual(['manifest.json', 'manifest.json', 'payload.img.gz']);

      // The slot, read in m1 and then on the host: the image, B the trial slot (priority 2, tries 1).
      expect(await slotSha()).toBe(sha(image));
      const back = join(s.dir, 'after.img');
      const copy = await run('bash', [join(envDir, 'exec.sh'), m, 'cat', `${DIR}/disk.img`], {
        encoding: 'buffer',
        maxBuffer: 128 * MiB,
      });
      writeFileSync(back, copy.stdout);
      expect(sha(readFileSync(back).subarray(slotFirst, slotFirst + image.length))).toBe(sha(image));
      expect(sgdiskBits(back, 4)).toEqual([49, 52]);
      expect(sgdiskBits(back, 3)).toEqual([48, 56]);
      expect(machineExec(m, 'cat', '/run/reboot-required')).toMatch(/restart required/);
    }, 120_000);

    it('after the reboot into 9.9.9 (status reset), the next check reports event 3/2 with previousversion 1.0.0', async () => {
      await mode(good, 'noupdate');
      const reset = await uec(good, '-reset_status', '9.9.9');
      expect(reset.out).toMatch(/CURRENT_OP=UPDATE_STATUS_IDLE/);
      const before = (await requests(good)).length;
      const r = await uec(good, '-update', '9.9.9');
      expect(r.out).toBe('No update available\n');
      const after = (await requests(good)).slice(before);
      expect(after).toHaveLength(1);
      expect(after[0]).toContain('version="9.9.9" track="beta"');
      expect(events(after[0]!)).toEqual(['3/2/1.0.0']);
    }, 60_000);
  },
);
