/**
 * The whole flow in process: a real HTTP server on 127.0.0.1 serving a bundle, an sgdisk image,
 * the slot writer in process (the transient-unit writer is the integration test's), and the
 * persisted status as `update status` prints it.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { cppDouble, formatWatch, updateEngineClientArgv } from '../../../src/cli/commands/update.js';
import { generateSigningKey, parsePublicKey } from '../../../src/update/bundle.js';
import { loadUpdateConfig } from '../../../src/update/config.js';
import { applyUpdate, checkForUpdate, type EngineDeps } from '../../../src/update/engine.js';
import { makeBundle } from '../../../src/update/make-bundle.js';
import { readState, writeState, INITIAL } from '../../../src/update/state.js';
import { writeSlot } from '../../../src/update/write.js';
import { coreosImage, scratch, sgdiskBits, sgdiskMissing, type Scratch } from './disk-image.js';

const key = generateSigningKey();
const keys = [parsePublicKey(key.publicPem, 'k.pub')];
let s: Scratch;
let server: Server;
let base: string;

beforeAll(async () => {
  s = scratch();
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(s.dir, 'image'), Buffer.alloc(3 * 1024 * 1024, 0x42));
  await makeBundle({
    image: join(s.dir, 'image'),
    outDir: join(s.dir, 'srv', 'stable', 'amd64-usr'),
    key: key.privatePem,
    version: '2.0.0',
    board: 'amd64-usr',
    arch: 'amd64',
    compression: 'gzip',
  });
  server = createServer((req, res) => {
    try {
      res.end(readFileSync(join(s.dir, 'srv', (req.url ?? '/').replace(/\.\./g, ''))));
    } catch {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  s.cleanup();
});

let t: Scratch;
afterEach(() => t?.cleanup());

function deps(current = '1.0.0'): { d: EngineDeps; reboots: number[] } {
  t = scratch();
  const img = coreosImage(join(t.dir, 'disk.img'));
  const config = loadUpdateConfig(
    {
      SERVER: base,
      CURRENT_VERSION: current,
      UPDATE_DISK: img,
      UPDATE_GRUBENV: join(t.dir, 'grubenv'),
      UPDATE_STAGING_DIR: join(t.dir, 'staging'),
      UPDATE_TRANSIENT_UNIT: 'no',
    },
    join(t.dir, 'none.conf'),
  );
  const reboots: number[] = [];
  const d: EngineDeps = {
    config,
    keys,
    booted: 'A',
    download: { attempts: 2, backoffMs: 5 },
    writer: ({ disk, booted }) =>
      writeSlot({
        disk,
        booted,
        stagingDir: config.stagingDir,
        keys,
        board: config.board,
        arch: 'amd64',
        grubenv: config.grubenv!,
      }).then(() => undefined),
    needReboot: () => reboots.push(Date.now()),
  };
  return { d, reboots };
}

describe.skipIf(sgdiskMissing)('update engine end to end', { timeout: 30_000 }, () => {
  it('check then apply: statuses in order, slot B installed as the trial slot, need-reboot sent', async () => {
    const { d, reboots } = deps();
    const seen: string[] = [];
    const c = await checkForUpdate({ ...d, onState: (st) => seen.push(st.status) });
    expect(c.available).toBe(true);
    expect(readState(d.config.stagingDir)).toMatchObject({
      status: 'UPDATE_STATUS_IDLE',
      newVersion: '2.0.0',
    });
    seen.length = 0;
    const final = await applyUpdate({
      ...d,
      onState: (st) => seen.push(st.status.replace('UPDATE_STATUS_', '')),
    });
    expect([...new Set(seen)]).toEqual([
      'CHECKING_FOR_UPDATE',
      'UPDATE_AVAILABLE',
      'DOWNLOADING',
      'VERIFYING',
      'FINALIZING',
      'UPDATED_NEED_REBOOT',
    ]);
    expect(final).toMatchObject({
      status: 'UPDATE_STATUS_UPDATED_NEED_REBOOT',
      newVersion: '2.0.0',
      progress: 1,
      slot: 'B',
    });
    expect(reboots).toHaveLength(1);
    expect(sgdiskBits(d.config.disk!, 4)).toEqual([49, 52]);
    // The status as update_engine_client -status prints it, from another "process" (the CLI).
    const out: string[] = [];
    const code = await main(
      ['update', 'status', `--staging-dir=${d.config.stagingDir}`, `--config=${join(t.dir, 'none.conf')}`],
      {
        out: (x) => out.push(x),
        err: (x) => out.push(x),
      },
    );
    expect(code).toBe(0);
    expect(out.join('')).toMatch(
      /^LAST_CHECKED_TIME=\d+\nPROGRESS=1\.000000\nCURRENT_OP=UPDATE_STATUS_UPDATED_NEED_REBOOT\nNEW_VERSION=2\.0\.0\nNEW_SIZE=\d+\n$/,
    );
  });

  it('the same version: no update, IDLE, nothing written', async () => {
    const { d, reboots } = deps('2.0.0');
    const final = await applyUpdate(d);
    expect(final.status).toBe('UPDATE_STATUS_IDLE');
    expect(final.lastCheckedTime).toBeGreaterThan(0);
    expect(reboots).toHaveLength(0);
    expect(sgdiskBits(d.config.disk!, 4)).toEqual([48]);
  });

  it('a failing step is reported and ends in IDLE with the error kept; a stale run is recovered', async () => {
    const { d } = deps();
    const bad = { ...d, keys: [parsePublicKey(generateSigningKey().publicPem, 'other.pub')] };
    await expect(applyUpdate(bad)).rejects.toMatchObject({ code: 'E_UPDATE_VERIFY' });
    expect(readState(d.config.stagingDir)).toMatchObject({
      status: 'UPDATE_STATUS_IDLE',
      lastError: expect.stringMatching(/E_UPDATE_VERIFY/) as unknown,
    });
    // A run killed in DOWNLOADING (its pid gone) is reported, and the next run completes.
    writeState(d.config.stagingDir, {
      ...INITIAL,
      status: 'UPDATE_STATUS_DOWNLOADING',
      pid: 2 ** 22 + 7,
    } as never);
    const final = await applyUpdate(d);
    expect(final.status).toBe('UPDATE_STATUS_UPDATED_NEED_REBOOT');
  });
});

describe('update_engine_client flags', () => {
  it('map to update subcommands', () => {
    expect(updateEngineClientArgv(['-status'])).toEqual(['update', 'status']);
    expect(updateEngineClientArgv(['-check_for_update'])).toEqual(['update', 'apply', '--background']);
    expect(updateEngineClientArgv(['-update'])).toEqual(['update', 'apply', '--exit-1-when-idle']);
    expect(updateEngineClientArgv(['--reset_status'])).toEqual(['update', 'reset-status']);
    expect(updateEngineClientArgv(['-watch_for_updates'])).toEqual(['update', 'watch']);
    expect(() => updateEngineClientArgv(['-interactive'])).toThrow(/unsupported flag/);
  });
});

describe('update_engine_client -watch_for_updates block', () => {
  it('prints progress as C++ streamed a double (%g, 6 significant digits)', () => {
    expect(['0', '1', '0.5', '0.0337457', '0.01', '1e-05', '0.000123457']).toEqual(
      [0, 1, 0.5, 0.033745678, 0.01, 0.00001, 0.0001234567].map(cppDouble),
    );
  });
  it('is the StatusUpdate handler text, one field a line', () => {
    expect(
      formatWatch({
        status: 'UPDATE_STATUS_DOWNLOADING',
        lastCheckedTime: 1700000000,
        progress: 0.25,
        newVersion: '9.9.9',
        newSize: 4096,
      } as never),
    ).toBe(
      'Got status update:\n  last_checked_time: 1700000000\n  progress: 0.25\n' +
        '  current_operation: UPDATE_STATUS_DOWNLOADING\n  new_version: 9.9.9\n  new_size: 4096\n',
    );
  });
});
