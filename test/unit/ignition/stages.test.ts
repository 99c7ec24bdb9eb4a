/**
 * The stages and first-boot gating: fetch caches a validated, rendered config (0600), disks refuses
 * storage it cannot do, files plans and hands the plan to the executor and records the result; a
 * second boot does nothing; no first-boot marker does nothing. The executor here records the plan
 * (the real one, src/target/apply.ts, is tested on its own); the gating is pure logic.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  APPLIED_CONFIG,
  FIRST_BOOT_FLAG,
  RESULT_FILE,
  cmdlineFirstBoot,
  firstBoot,
} from '../../../src/ignition/firstboot.js';
import { CACHE_NAME, runStage, type StageOptions } from '../../../src/ignition/stages.js';
import type { ApplyOptions } from '../../../src/target/apply.js';
import type { ApplyResult, PlannedAction } from '../../../src/target/types.js';
import { recorder } from '../datasource/log-recorder.js';

// Module loading and the ajv compile run on a shared, loaded machine: more than the 5 s default.
vi.setConfig({ testTimeout: 30_000 });

let dir: string;
let root: string;
let run: string;
let cmdline: string;
let applied: { plan: readonly PlannedAction[]; opts: ApplyOptions }[];

const apply = (plan: readonly PlannedAction[], opts: ApplyOptions): Promise<ApplyResult> => {
  applied.push({ plan, opts });
  return Promise.resolve({ changed: [...plan], unchanged: [] });
};

function opts(config: unknown, extra: Partial<StageOptions> = {}): StageOptions {
  const file = join(dir, 'user.ign');
  writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config));
  return {
    platform: 'file',
    root,
    runDir: run,
    cmdlinePath: cmdline,
    source: { path: file },
    apply,
    ...extra,
  };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'flotilla-ign-'));
  root = join(dir, 'root');
  run = join(dir, 'run');
  cmdline = join(dir, 'cmdline');
  mkdirSync(root);
  writeFileSync(cmdline, 'BOOT_IMAGE=/vmlinuz root=/dev/vda1 ignition.firstboot ignition.platform.id=qemu\n');
  applied = [];
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const CONFIG = {
  ignition: { version: '3.4.0' },
  storage: { files: [{ path: '/etc/motd', contents: { source: 'data:,welcome' } }] },
  systemd: { units: [{ name: 'app.service', enabled: true, contents: '[Service]\nExecStart=/bin/true\n' }] },
  passwd: {
    users: [{ name: 'core', passwordHash: '$6$secret-hash', sshAuthorizedKeys: ['ssh-ed25519 AAAA k'] }],
  },
};

describe('first-boot detection', () => {
  it('reads ignition.firstboot, coreos.first_boot and flatcar.first_boot', () => {
    expect(cmdlineFirstBoot('quiet ignition.firstboot')).toBe(true);
    expect(cmdlineFirstBoot('ignition.firstboot=1')).toBe(true);
    expect(cmdlineFirstBoot('ignition.firstboot=0')).toBe(false);
    expect(cmdlineFirstBoot('coreos.first_boot=detected')).toBe(true);
    expect(cmdlineFirstBoot('coreos.first_boot=off flatcar.first_boot=')).toBe(false);
    expect(cmdlineFirstBoot('flatcar.first_boot=1')).toBe(true);
    expect(cmdlineFirstBoot('root=/dev/vda ignition.firstboots')).toBe(false);
  });
  it('the flag file counts; the result file wins over both', async () => {
    writeFileSync(cmdline, 'root=/dev/vda1\n');
    expect((await firstBoot({ root, cmdlinePath: cmdline })).firstBoot).toBe(false);
    mkdirSync(join(root, 'boot/flotilla'), { recursive: true });
    writeFileSync(join(root, FIRST_BOOT_FLAG), '');
    expect(await firstBoot({ root, cmdlinePath: cmdline })).toEqual({
      firstBoot: true,
      why: `${FIRST_BOOT_FLAG} exists`,
    });
    mkdirSync(join(root, 'etc'), { recursive: true });
    writeFileSync(join(root, RESULT_FILE), '{}');
    expect((await firstBoot({ root, cmdlinePath: cmdline })).firstBoot).toBe(false);
  });
});

describe('stages', () => {
  it('fetch → disks → files on first boot, then a second boot does nothing', async () => {
    mkdirSync(join(root, 'boot/flotilla'), { recursive: true });
    writeFileSync(join(root, FIRST_BOOT_FLAG), '');
    const log = recorder();
    const o = opts(CONFIG, { log });
    expect(await runStage('fetch', o)).toEqual({ ran: true, stage: 'fetch' });
    const cache = join(run, CACHE_NAME);
    expect(statSync(cache).mode & 0o777).toBe(0o600);
    expect(statSync(join(run, 'flotilla')).mode & 0o777).toBe(0o700);
    expect(await runStage('disks', o)).toEqual({ ran: true, stage: 'disks' });
    expect(await runStage('files', o)).toEqual({ ran: true, stage: 'files', changed: 4, unchanged: 0 });
    expect(applied).toHaveLength(1);
    expect(applied[0]!.opts).toMatchObject({ root, live: false });
    expect(applied[0]!.plan.map((p) => p.reason)).toEqual([
      'passwd.users[0] core',
      'passwd.users[0].sshAuthorizedKeys core',
      'storage.files[0] /etc/motd',
      'systemd.units[0] app.service',
    ]);
    // Recorded for the next boot: result (no config in it), the applied config 0600, flag gone.
    const result = JSON.parse(readFileSync(join(root, RESULT_FILE), 'utf8')) as Record<string, unknown>;
    expect(result).toMatchObject({
      userConfigProvided: true,
      flotilla: { configVersion: '3.4.0', platform: 'file', changed: 4 },
    });
    expect(readFileSync(join(root, RESULT_FILE), 'utf8')).not.toContain('secret-hash');
    expect(statSync(join(root, APPLIED_CONFIG)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(join(root, APPLIED_CONFIG), 'utf8'))).toMatchObject({
      storage: CONFIG.storage,
    });
    expect(existsSync(join(root, FIRST_BOOT_FLAG))).toBe(false);
    // Never a secret or contents in the log.
    expect(log.text()).not.toMatch(/secret-hash|welcome|AAAA/);

    // Second boot: the kernel argument is still there, but the result file gates every stage.
    for (const s of ['fetch', 'disks', 'files'] as const) {
      expect(await runStage(s, o)).toEqual({
        ran: false,
        why: `already provisioned (${RESULT_FILE} exists)`,
      });
    }
    expect(applied).toHaveLength(1);
  });

  it('not a first boot: nothing is fetched or applied', async () => {
    writeFileSync(cmdline, 'root=/dev/vda1\n');
    const o = opts(CONFIG);
    expect((await runStage('fetch', o)).ran).toBe(false);
    expect(existsSync(join(run, CACHE_NAME))).toBe(false);
    expect((await runStage('files', o)).ran).toBe(false);
    expect(applied).toHaveLength(0);
  });

  it('a refused config fails at fetch and nothing is cached or applied', async () => {
    const o = opts({
      ...CONFIG,
      storage: { ...CONFIG.storage, disks: [{ device: '/dev/vdb', wipeTable: true }] },
    });
    await expect(runStage('fetch', o)).rejects.toThrow(
      /\$\.storage\.disks: partitioning disks \(storage\.disks\) is not supported by flotilla/,
    );
    expect(existsSync(join(run, CACHE_NAME))).toBe(false);
    await expect(runStage('files', o)).rejects.toThrow(/run the fetch stage first/);
    expect(applied).toHaveLength(0);
    expect(existsSync(join(root, RESULT_FILE))).toBe(false);
  });

  it('disks refuses a cached config with storage it cannot do', async () => {
    mkdirSync(join(run, 'flotilla'), { recursive: true });
    writeFileSync(
      join(run, CACHE_NAME),
      JSON.stringify({
        version: '3.4.0',
        platform: 'file',
        userConfigProvided: true,
        config: { ignition: { version: '3.4.0' }, storage: { raid: [{ name: 'md0' }] } },
      }),
    );
    await expect(runStage('disks', opts(CONFIG))).rejects.toThrow(
      /\$\.storage\.raid: creating RAID arrays .* nothing was applied/,
    );
  });

  it('a hash mismatch in file contents fails the files stage before anything is applied', async () => {
    const o = opts({
      ignition: { version: '3.4.0' },
      storage: {
        files: [
          { path: '/etc/a', contents: { source: 'data:,a' } },
          {
            path: '/etc/b',
            contents: { source: 'data:,b', verification: { hash: `sha256-${'0'.repeat(64)}` } },
          },
        ],
      },
    });
    await runStage('fetch', o);
    await expect(runStage('files', o)).rejects.toThrow(
      /storage\.files\[1\]\.contents \/etc\/b: sha256 hash mismatch/,
    );
    expect(applied).toHaveLength(0);
    expect(existsSync(join(root, RESULT_FILE))).toBe(false);
  });

  it('platform file: a missing config file is an error, not an empty config', async () => {
    const o: StageOptions = {
      platform: 'file',
      root,
      runDir: run,
      cmdlinePath: cmdline,
      source: { path: join(dir, 'nope.ign') },
      apply,
    };
    await expect(runStage('fetch', o)).rejects.toThrow(/ignition config file .*nope\.ign does not exist/);
    expect(existsSync(join(run, CACHE_NAME))).toBe(false);
  });

  it('no config from the platform: an empty config, recorded as not provided', async () => {
    const o: StageOptions = {
      platform: 'qemu',
      root,
      runDir: run,
      cmdlinePath: cmdline,
      source: { fwCfgPath: join(dir, 'absent') },
      apply,
    };
    await runStage('fetch', o);
    expect(await runStage('files', o)).toEqual({ ran: true, stage: 'files', changed: 0, unchanged: 0 });
    expect(JSON.parse(readFileSync(join(root, RESULT_FILE), 'utf8'))).toMatchObject({
      userConfigProvided: false,
    });
  });
});
