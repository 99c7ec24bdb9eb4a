/**
 * Reading Ignition configs: every spec version's minimal and full config, schema errors with JSON
 * paths and lines per version, unknown keys as warnings, unsupported versions, JSON syntax errors
 * with line and column, the 16 MiB bound, semantic checks and refusals of what flotilla does not do.
 */
import { describe, expect, it, vi } from 'vitest';
import { isCode } from '../../../src/lib/errors.js';
import { MAX_CONFIG_BYTES, parseIgnition, validateIgnition } from '../../../src/ignition/parse.js';
import { formatIssue } from '../../../src/ignition/types.js';

// Module loading and the ajv compile run on a shared, loaded machine: more than the 5 s default.
vi.setConfig({ testTimeout: 30_000 });

const V3 = ['3.0.0', '3.1.0', '3.2.0', '3.3.0', '3.4.0'];
const minor = (v: string): number => Number(v.split('.')[1]);

function full(version: string): Record<string, unknown> {
  const m = minor(version);
  const res = (src: string): Record<string, unknown> => ({
    source: src,
    ...(m >= 1 ? { httpHeaders: [{ name: 'X-Token', value: 'abc' }] } : {}),
  });
  return {
    ignition: {
      version,
      config: { merge: [res('http://127.0.0.1:1/base.ign')] },
      timeouts: { httpResponseHeaders: 5, httpTotal: 30 },
      ...(m >= 1 ? { proxy: { noProxy: ['127.0.0.1'] } } : {}),
    },
    storage: {
      files: [
        {
          path: '/etc/motd',
          overwrite: true,
          mode: 420,
          user: { name: 'core' },
          group: { id: 0 },
          contents: { source: 'data:,hello%20world', compression: '', verification: {} },
          append: [{ source: 'data:;base64,Cg==' }],
        },
      ],
      directories: [{ path: '/etc/app', mode: 493, user: { id: 0 } }],
      links: [{ path: '/etc/app/current', target: '/opt/app', hard: false }],
    },
    systemd: {
      units: [
        { name: 'app.service', enabled: true, contents: '[Service]\nExecStart=/bin/true\n' },
        {
          name: 'docker.service',
          dropins: [{ name: '10-env.conf', contents: '[Service]\nEnvironment=A=1\n' }],
        },
        { name: 'telnet.socket', mask: true },
      ],
    },
    passwd: {
      users: [
        {
          name: 'core',
          passwordHash: '$6$rounds=4096$salt$hash',
          sshAuthorizedKeys: ['ssh-ed25519 AAAA core@example'],
          uid: 1000,
          gecos: 'CoreOS Admin',
          homeDir: '/home/core',
          noCreateHome: false,
          primaryGroup: 'core',
          groups: ['sudo', 'docker'],
          noUserGroup: false,
          system: false,
          noLogInit: false,
          shell: '/bin/bash',
          ...(m >= 2 ? { shouldExist: true } : {}),
        },
      ],
      groups: [{ name: 'docker', gid: 233, system: true, ...(m >= 2 ? { shouldExist: true } : {}) }],
    },
    ...(m >= 3 ? { kernelArguments: { shouldExist: [], shouldNotExist: [] } } : {}),
  };
}

describe('each spec version', () => {
  for (const v of V3) {
    it(`${v}: minimal and full configs are valid, with no warnings`, () => {
      const min = validateIgnition(JSON.stringify({ ignition: { version: v } }));
      expect(min.issues).toEqual([]);
      expect(min.version).toBe(v);
      const f = validateIgnition(JSON.stringify(full(v), null, 2));
      expect(f.issues.map(formatIssue)).toEqual([
        expect.stringMatching(/^warning at \$\.ignition\.timeouts\.httpTotal, line \d+ col \d+: not applied/),
      ]);
      expect(f.config?.storage?.files?.[0]?.path).toBe('/etc/motd');
    });

    it(`${v}: schema errors carry the JSON path and line`, () => {
      const text = [
        '{',
        `  "ignition": { "version": "${v}" },`,
        '  "storage": { "files": [ { "path": "/a", "mode": "0644" }, { "mode": 1 } ] },',
        '  "systemd": { "units": [ { "name": "a.service", "enabled": "yes" } ] }',
        '}',
      ].join('\n');
      const r = validateIgnition(text);
      expect(r.issues.map(formatIssue)).toEqual([
        'error at $.storage.files[0].mode, line 3 col 51: must be integer',
        'error at $.storage.files[1].path, line 3 col 61: is required',
        'error at $.systemd.units[0].enabled, line 4 col 61: must be boolean',
      ]);
      expect(() => parseIgnition(text)).toThrow(
        /\$\.storage\.files\[0\]\.mode: must be integer \(line 3 col 51\)/,
      );
    });
  }

  it('fields of later versions are unknown keys (warnings) in earlier ones', () => {
    const r = validateIgnition(
      JSON.stringify({
        ignition: { version: '3.0.0' },
        passwd: { users: [{ name: 'core', shouldExist: true }] },
      }),
    );
    expect(r.issues.map(formatIssue)).toEqual([
      'warning at $.passwd.users[0].shouldExist, line 1 col 81: unused key shouldExist',
    ]);
    expect(
      parseIgnition(
        JSON.stringify({
          ignition: { version: '3.2.0' },
          passwd: { users: [{ name: 'core', shouldExist: true }] },
        }),
      ).warnings,
    ).toEqual([]);
  });

  it('3.4 allows a null link target in the schema, but the link still needs one', () => {
    const cfg = { ignition: { version: '3.4.0' }, storage: { links: [{ path: '/a', target: null }] } };
    expect(validateIgnition(JSON.stringify(cfg)).issues.map(formatIssue)).toEqual([
      'error at $.storage.links[0].target, line 1 col 75: link target is required',
    ]);
    cfg.ignition.version = '3.3.0';
    expect(validateIgnition(JSON.stringify(cfg)).issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      '$.storage.links[0].target: must be string',
    ]);
  });
});

describe('config references', () => {
  it('an empty replace is unset; merge and replace together are an error', () => {
    expect(
      validateIgnition(
        JSON.stringify({ ignition: { version: '3.4.0', config: { replace: { source: null } } } }),
      ).issues,
    ).toEqual([]);
    const both = {
      ignition: {
        version: '3.4.0',
        config: { merge: [{ source: 'data:,' }], replace: { source: 'data:,' } },
      },
    };
    expect(validateIgnition(JSON.stringify(both)).issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      '$.ignition.config: merge and replace cannot both be set',
    ]);
    const noSource = { ignition: { version: '3.1.0', config: { merge: [{ compression: 'gzip' }] } } };
    expect(validateIgnition(JSON.stringify(noSource)).issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      '$.ignition.config.merge[0].source: is required',
    ]);
  });
});

describe('versions', () => {
  for (const v of ['1.0.0', '3.5.0-experimental', '3.4.0-experimental', '4.0.0', '3.5.0', '2.4.0']) {
    it(`refuses ${v}, naming it`, () => {
      let err: unknown;
      try {
        parseIgnition(JSON.stringify({ ignition: { version: v } }));
      } catch (e) {
        err = e;
      }
      expect(isCode(err, 'E_IGNITION')).toBe(true);
      expect((err as Error).message).toContain(`unsupported config version "${v}"`);
    });
  }
  it('refuses spec 1 (ignitionVersion)', () => {
    expect(() => parseIgnition('{"ignitionVersion": 1}')).toThrow(/unsupported config version 1/);
  });
  it('refuses an unparsable or missing version', () => {
    expect(() => parseIgnition('{"ignition": {"version": "three"}}')).toThrow(
      /invalid config version "three"/,
    );
    expect(() => parseIgnition('{"ignition": {}}')).toThrow(/\$\.ignition\.version: is required/);
    expect(() => parseIgnition('{}')).toThrow(/\$\.ignition\.version: is required/);
  });
});

describe('bad input', () => {
  it('JSON syntax errors give line and column', () => {
    const r = validateIgnition('{\n  "ignition": { "version": "3.4.0" },\n  "storage": { "files": [ } ]\n}');
    expect(r.issues.map(formatIssue)).toEqual([
      'error at $, line 3 col 27: invalid JSON: unexpected character "}", expected a value',
    ]);
    expect(() => parseIgnition('{"ignition": ')).toThrow(
      /invalid JSON: unexpected end of input, expected a value \(line 1 col 14\)/,
    );
    expect(() => parseIgnition('{"a": 1} x')).toThrow(/line 1 col 10/);
  });
  it('absurd nesting is an error, not a crash', () => {
    expect(() => parseIgnition('['.repeat(100_000))).toThrow(
      /invalid JSON: nested deeper than 500 levels \(line 1 col 501\)/,
    );
  });
  it('an empty config and a non-object are errors', () => {
    expect(() => parseIgnition('  \n')).toThrow(/not a config \(empty\)/);
    expect(() => parseIgnition('[1]')).toThrow(/must be a JSON object/);
  });
  it('a config over 16 MiB is refused before parsing', () => {
    const big = Buffer.alloc(MAX_CONFIG_BYTES + 1, 0x20);
    expect(() => parseIgnition(big)).toThrow(/larger than the 16 MiB limit/);
  });
  it('semantic errors: relative and duplicate paths, modes, hashes, compression, schemes, names', () => {
    const cfg = {
      ignition: { version: '3.4.0' },
      storage: {
        files: [
          { path: 'etc/rel' },
          { path: '/etc/x', mode: 99999 },
          {
            path: '/etc/y',
            contents: { source: 'data:,a', verification: { hash: 'md5-abc' }, compression: 'bzip2' },
          },
          { path: '/etc/z', contents: { source: 's3://bucket/key' } },
          { path: '/etc/w', overwrite: true },
          { path: '/etc/../shadow' },
        ],
        directories: [{ path: '/etc/x' }],
      },
      systemd: { units: [{ name: 'nodot' }, { name: 'a.service', dropins: [{ name: 'x.txt' }] }] },
      passwd: { users: [{ name: 'bad name' }] },
    };
    expect(validateIgnition(JSON.stringify(cfg)).issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      '$.storage.files[0].path: path not absolute',
      '$.storage.files[1].mode: illegal file mode 99999 (must be 0 to 4095, i.e. 0o7777)',
      '$.storage.files[2].contents.compression: invalid compression method "bzip2"',
      '$.storage.files[2].contents.verification.hash: invalid hash: expected sha512-<128 hex> or sha256-<64 hex>',
      '$.storage.files[3].contents.source: scheme s3 is not supported by flotilla (only data, http and https)',
      '$.storage.files[4].overwrite: overwrite must be false if contents.source is unspecified',
      '$.storage.files[5].path: path must not contain ".."',
      '$.storage.directories[0].path: duplicate entry /etc/x (also at $.storage.files[1])',
      expect.stringMatching(/^\$\.systemd\.units\[0\]\.name: /),
      '$.systemd.units[1].dropins[0].name: invalid drop-in name "x.txt": must end in .conf and contain no "/"',
      '$.passwd.users[0].name: invalid user name "bad name"',
    ]);
  });
});

describe('refusals (nothing is applied)', () => {
  const cases: [string, Record<string, unknown>, string][] = [
    [
      '3.4.0',
      { storage: { disks: [{ device: '/dev/vdb', wipeTable: true }] } },
      '$.storage.disks: partitioning disks (storage.disks) is not supported by flotilla',
    ],
    [
      '3.0.0',
      { storage: { raid: [{ name: 'md0', level: 'raid1', devices: ['/dev/a', '/dev/b'] }] } },
      '$.storage.raid: creating RAID arrays (storage.raid) is not supported by flotilla',
    ],
    [
      '3.2.0',
      { storage: { luks: [{ name: 'data', device: '/dev/vdb' }] } },
      '$.storage.luks: creating LUKS volumes (storage.luks) is not supported by flotilla',
    ],
    [
      '3.1.0',
      {
        storage: {
          filesystems: [{ device: '/dev/vdb', format: 'ext4', wipeFilesystem: true, path: '/var' }],
        },
      },
      '$.storage.filesystems: creating or mounting filesystems (storage.filesystems) is not supported by flotilla',
    ],
    [
      '3.3.0',
      { kernelArguments: { shouldExist: ['quiet'] } },
      '$.kernelArguments: changing kernel arguments (kernelArguments) is not supported by flotilla',
    ],
    [
      '3.2.0',
      { passwd: { users: [{ name: 'old', shouldExist: false }] } },
      '$.passwd.users[0].shouldExist: deleting users (shouldExist: false) is not supported by flotilla',
    ],
    [
      '3.2.0',
      { passwd: { groups: [{ name: 'old', shouldExist: false }] } },
      '$.passwd.groups[0].shouldExist: deleting groups (shouldExist: false) is not supported by flotilla',
    ],
    [
      '3.0.0',
      {
        ignition: {
          version: '3.0.0',
          security: { tls: { certificateAuthorities: [{ source: 'data:,x' }] } },
        },
      },
      '$.ignition.security.tls.certificateAuthorities: custom certificate authorities are not supported by flotilla',
    ],
    [
      '3.1.0',
      { ignition: { version: '3.1.0', proxy: { httpProxy: 'http://proxy:3128' } } },
      '$.ignition.proxy: fetching through a proxy is not supported by flotilla',
    ],
  ];
  for (const [v, extra, msg] of cases) {
    it(msg, () => {
      const cfg = {
        ignition: { version: v },
        storage: { files: [{ path: '/etc/ok', contents: { source: 'data:,x' } }] },
        ...extra,
      };
      let err: unknown;
      try {
        parseIgnition(JSON.stringify(cfg));
      } catch (e) {
        err = e;
      }
      expect(isCode(err, 'E_IGNITION')).toBe(true);
      expect((err as Error).message).toContain(msg);
    });
  }
});
