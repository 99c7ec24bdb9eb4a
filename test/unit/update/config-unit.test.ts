import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { transientProperties } from '../../../src/systemd/transient.js';
import { loadUpdateConfig, parseBytes } from '../../../src/update/config.js';
import { writeSlotArgv, writeUnitSpec } from '../../../src/update/unit.js';
import { scratch, type Scratch } from './disk-image.js';

let s: Scratch;
afterEach(() => s?.cleanup());
const conf = (text: string) => {
  s = scratch();
  const f = join(s.dir, 'update.conf');
  writeFileSync(f, text);
  return f;
};

describe('update.conf', () => {
  it('defaults, SERVER as a base URL, environment overrides the file', () => {
    const f = conf('GROUP=beta\nSERVER=https://updates.example/bundles\nUPDATE_IO_WEIGHT=20\n');
    const c = loadUpdateConfig({ UPDATE_IO_WEIGHT: '30' }, f, join(s.dir, 'os-release'));
    expect(c).toMatchObject({
      manifestUrl: 'https://updates.example/bundles/beta/amd64-usr/manifest.json',
      group: 'beta',
      board: 'amd64-usr',
      currentVersion: '0.0.0',
      ioWeight: 30,
      cpuWeight: 10,
      nice: 19,
      healthySeconds: 60,
      transientUnit: true,
      keysDir: '/etc/flotilla/update-keys',
      stagingDir: '/var/lib/flotilla/update',
    });
    expect(loadUpdateConfig({ SERVER: 'http://h/x/manifest.json' }, f).manifestUrl).toBe(
      'http://h/x/manifest.json',
    );
  });

  const bad: [string, RegExp][] = [
    ['UPDATE_IO_WEIGHT=0', /update.conf:1: UPDATE_IO_WEIGHT: "0" is not an integer in 1..10000/],
    ['\nUPDATE_NICE=20', /update.conf:2: UPDATE_NICE/],
    ['SERVER=ftp://x/', /SERVER: must be an http or https URL/],
    ['SERVER=not a url', /SERVER: "not a url" is not a URL/],
    ['UPDATE_DISK=relative/disk', /UPDATE_DISK: "relative\/disk" is not an absolute path/],
    ['UPDATE_IO_WRITE_BANDWIDTH_MAX=fast', /UPDATE_IO_WRITE_BANDWIDTH_MAX/],
    ['BOARD=../x', /BOARD/],
    ['UPDATE_TRANSIENT_UNIT=maybe', /UPDATE_TRANSIENT_UNIT: must be yes or no/],
  ];
  for (const [text, re] of bad) {
    it(`refuses ${text.trim()} naming key and line`, () => {
      const f = conf(text);
      expect(() => loadUpdateConfig({}, f)).toThrow(re);
    });
  }

  it('parses byte sizes as systemd does (1024-based)', () => {
    expect(parseBytes('50M')).toBe(52_428_800);
    expect(parseBytes('1g')).toBe(1024 ** 3);
    expect(parseBytes('4096')).toBe(4096);
    expect(parseBytes('0')).toBeUndefined();
    expect(parseBytes('1.5M')).toBeUndefined();
  });
});

describe('write unit spec (pure)', () => {
  it('carries the throttle and an argv (no shell), and systemd properties build from it', () => {
    const f = conf(
      'UPDATE_IO_WEIGHT=42\nUPDATE_CPU_WEIGHT=7\nUPDATE_NICE=15\nUPDATE_IO_WRITE_BANDWIDTH_MAX=50M\nUPDATE_GRUBENV=/boot/grub/grubenv\nUPDATE_PARTITION_B=/dev/vda4\n',
    );
    const c = loadUpdateConfig({}, f);
    const w = {
      flotilla: ['/usr/bin/node', '/usr/lib/flotilla/bin/flotilla'],
      disk: '/dev/vda',
      booted: 'A' as const,
    };
    const spec = writeUnitSpec(c, w);
    expect(spec).toMatchObject({
      name: 'flotilla-update-write.service',
      type: 'oneshot',
      ioWeight: 42,
      cpuWeight: 7,
      nice: 15,
      ioWriteBandwidthMax: [{ device: '/dev/vda4', bytesPerSecond: 52_428_800 }],
    });
    expect(writeSlotArgv(c, w)).toEqual([
      '/usr/bin/node',
      '/usr/lib/flotilla/bin/flotilla',
      'update',
      'write-slot',
      '--disk=/dev/vda',
      '--booted=A',
      '--staging-dir=/var/lib/flotilla/update',
      '--keys-dir=/etc/flotilla/update-keys',
      '--board=amd64-usr',
      '--grubenv=/boot/grub/grubenv',
      '--partition=/dev/vda4',
    ]);
    const props = Object.fromEntries(transientProperties(spec).map(([k, v]) => [k, v.value]));
    expect(props).toMatchObject({ IOWeight: 42n, CPUWeight: 7n, Nice: 15, Type: 'oneshot' });
    expect(props.IOWriteBandwidthMax).toEqual([['/dev/vda4', 52_428_800n]]);
  });
});
