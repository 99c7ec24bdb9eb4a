/** `flotilla cloudinit` / `coreos-cloudinit` in-process: flags, -validate output and exit codes. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { goStyleFlags, main } from '../../../src/cli/main.js';
import { makeRoot, why } from '../target/root.js';

const dir = mkdtempSync(join(tmpdir(), 'flotilla-ci-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function cli(argv: string[], argv1?: string) {
  let out = '';
  let err = '';
  const saved = process.argv[1];
  if (argv1) process.argv[1] = argv1;
  try {
    const code = await main(argv, { out: (s) => (out += s), err: (s) => (err += s) }, {});
    return { code, out, err };
  } finally {
    process.argv[1] = saved!;
  }
}

const BAD = join(dir, 'bad.yml');
writeFileSync(
  BAD,
  '#cloud-config\ncoreos:\n  update:\n    reboot-strategy: false\n  units:\n    - name: a.service\n      command: lol\nbogus: 1\n',
);
const GOOD = join(dir, 'good.yml');
writeFileSync(
  GOOD,
  '#cloud-config\nhostname: a\nwrite_files:\n  - path: /etc/x\n    permissions: 0644\n    content: x\n',
);

// The first run loads the command's modules: seconds on a loaded host.
describe('cloudinit CLI', { timeout: 30_000 }, () => {
  it('-validate -from-file prints the report lines on stdout and exits 1', async () => {
    const r = await cli(['cloudinit', '-validate', '-from-file', BAD]);
    expect(r.code).toBe(1);
    expect(r.err).not.toMatch(/line \d+:/);
    expect(r.out.split('\n').filter(Boolean)).toEqual([
      'line 8: warning: unrecognized key "bogus"',
      'line 4: error: invalid value false',
      'line 7: error: invalid value lol',
    ]);
  });

  it('takes --flag and -flag=value spellings; a clean config exits 0 with no output', async () => {
    for (const argv of [
      ['cloudinit', '--validate', `--from-file=${GOOD}`],
      ['cloudinit', '-validate', `-from-file=${GOOD}`],
      ['cloudinit', '-validate=true', '-from-file', GOOD],
    ]) {
      const r = await cli(argv);
      expect([r.code, r.out], argv.join(' ')).toEqual([0, '']);
    }
  });

  it('answers as coreos-cloudinit (argv[0])', async () => {
    const r = await cli(['-validate', '-from-file', BAD], '/usr/bin/coreos-cloudinit');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^line 8: warning: unrecognized key "bogus"$/m);
  });

  it('without a datasource prints the accepted flags and exits 2', async () => {
    const r = await cli(['cloudinit']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/Provide at least one of --from-file/);
    expect(r.err).toMatch(/-from-vmware-guestinfo/);
  });

  it('refuses an unknown -oem, a bad -convert-netconf and the cloud metadata services', async () => {
    expect((await cli(['cloudinit', '-oem', 'nope'])).code).toBe(2);
    const c = await cli(['cloudinit', '-convert-netconf', 'bsd', '-from-file', GOOD]);
    expect(c.code).toBe(2);
    expect(c.err).toMatch(/Invalid option to -convert-netconf: "bsd"/);
    const ec2 = await cli(['cloudinit', '-oem', 'ec2-compat']);
    expect(ec2.code).toBe(1);
    expect(ec2.err).toMatch(/-from-ec2-metadata: this datasource is not supported/);
  });

  it('rewrites only long flags of the command (Go flag syntax)', () => {
    const specs = {
      'from-file': { type: 'string' as const, help: '' },
      validate: { type: 'boolean' as const, help: '' },
    };
    expect(
      goStyleFlags(['-from-file', 'x', '-validate=false', '-q', '-nope', '--', '-validate'], specs),
    ).toEqual(['--from-file', 'x', '--validate=false', '-q', '-nope', '--', '-validate']);
  });
});

describe.skipIf(why)('cloudinit --root DIR (the real executor)', { timeout: 60_000 }, () => {
  it('applies into the tree, and a second run converges (nothing rewritten)', async () => {
    const r = makeRoot();
    try {
      const cc = join(dir, 'apply.yml');
      writeFileSync(
        cc,
        '#cloud-config\nhostname: rooted\nusers:\n  - name: ops\n    groups: [adm]\n    ssh_authorized_keys: [ssh-ed25519 AAAA ops]\nwrite_files:\n  - path: /etc/firstboot/plain\n    permissions: 0640\n    owner: root:adm\n    content: plain\n',
      );
      const first = await cli(['cloudinit', '-from-file', cc, '--root', r.dir]);
      expect(first.code, first.err).toBe(0);
      expect(r.read('etc/firstboot/plain')).toBe('plain');
      expect(r.read('etc/hostname').trim()).toBe('rooted');
      expect(r.read('etc/passwd')).toMatch(/^ops:/m);
      const before = r.snapshot();
      const second = await cli(['cloudinit', '-from-file', cc, '--root', r.dir]);
      expect(second.code, second.err).toBe(0);
      expect(r.snapshot()).toBe(before);
    } finally {
      r.cleanup();
    }
  });
});
