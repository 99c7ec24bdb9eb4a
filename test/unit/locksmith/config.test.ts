/** update.conf + environment → RebootConfig, and the errors that name the key. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRebootConfig, parseUpdateConf } from '../../../src/locksmith/config.js';

const dir = mkdtempSync(join(tmpdir(), 'flotilla-updconf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (text: string) => {
  const p = join(dir, `u${Math.random().toString(36).slice(2)}.conf`);
  writeFileSync(p, text);
  return p;
};

describe('update.conf', () => {
  it('defaults without a file: strategy reboot, no window', () => {
    expect(loadRebootConfig({}, join(dir, 'absent.conf'))).toEqual({
      strategy: 'reboot',
      zone: 'local',
      group: '',
      drainTimeoutMs: 300_000,
      lockTtlSec: 600,
    });
  });

  it('reads the file as locksmithd did, with the environment winning', () => {
    const p = file(
      '# written by first boot\nGROUP=stable\nREBOOT_STRATEGY="etcd-lock"\nLOCKSMITHD_REBOOT_WINDOW_START=Thu 04:00\nLOCKSMITHD_REBOOT_WINDOW_LENGTH=1h30m\n',
    );
    const c = loadRebootConfig({ LOCKSMITHD_GROUP: 'web', LOCKSMITHD_DRAIN_TIMEOUT: '90s' }, p);
    expect(c).toMatchObject({ strategy: 'etcd-lock', group: 'web', drainTimeoutMs: 90_000 });
    expect(c.window?.text).toBe('Thu 04:00 1h30m0s');
    expect(loadRebootConfig({ REBOOT_STRATEGY: 'off' }, p).strategy).toBe('off');
  });

  it('falls back to REBOOT_WINDOW_START/LENGTH', () => {
    const c = loadRebootConfig({ REBOOT_WINDOW_START: '04:00', REBOOT_WINDOW_LENGTH: '1h' }, join(dir, 'x'));
    expect(c.window?.text).toBe('04:00 1h0m0s');
  });

  it.each([
    [
      { REBOOT_STRATEGY: 'sometimes' },
      /REBOOT_STRATEGY \(environment\): "sometimes" is not one of reboot, etcd-lock, best-effort, off/,
    ],
    [
      { LOCKSMITHD_REBOOT_WINDOW_START: '04:00' },
      /LOCKSMITHD_REBOOT_WINDOW_START \(environment\): a reboot window needs both/,
    ],
    [
      { LOCKSMITHD_REBOOT_WINDOW_START: 'Thx 04:00', LOCKSMITHD_REBOOT_WINDOW_LENGTH: '1h' },
      /LOCKSMITHD_REBOOT_WINDOW_START \(environment\): "Thx" is not a day/,
    ],
    [
      { LOCKSMITHD_REBOOT_WINDOW_START: '04:00', LOCKSMITHD_REBOOT_WINDOW_LENGTH: '25h' },
      /LOCKSMITHD_REBOOT_WINDOW_LENGTH \(environment\): "25h" must be shorter than 24h/,
    ],
    [
      { LOCKSMITHD_WINDOW_ZONE: 'mars' },
      /LOCKSMITHD_WINDOW_ZONE \(environment\): "mars" must be local or utc/,
    ],
    [{ LOCKSMITHD_LOCK_TTL: '1s' }, /LOCKSMITHD_LOCK_TTL \(environment\): "1s" must be at least 5s/],
    [{ LOCKSMITHD_DRAIN_TIMEOUT: 'later' }, /LOCKSMITHD_DRAIN_TIMEOUT: "later" is not a duration/],
  ])('refuses %j naming the key', (env, msg) => {
    expect(() => loadRebootConfig(env, join(dir, 'absent.conf'))).toThrow(msg);
  });

  it('names the file line of a bad value or a bad line', () => {
    const p = file('REBOOT_STRATEGY=etcd-lock\nREBOOT_STRATEGY=nope\n');
    expect(() => loadRebootConfig({}, p)).toThrow(`REBOOT_STRATEGY (${p}:2): "nope" is not one of`);
    expect(() => parseUpdateConf('A=1\nthis is not a setting\n', 'u.conf')).toThrow(
      'u.conf:2: expected KEY=VALUE',
    );
  });
});
