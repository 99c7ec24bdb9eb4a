/**
 * `ssh`: which machine it picks (ID prefix, unit's machine) and the argv it gives the system ssh.
 * A fake `ssh` first on PATH records its argv and exits with a chosen status; this tests our argv
 * building and exit-status handling, not OpenSSH.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cliWrapper } from './child.js';
import { M2, seed, startApi, type Api } from './harness.js';

let api: Api;
let bin: string;
let record: string;

beforeAll(async () => {
  api = await startApi();
  await seed(api);
  bin = mkdtempSync(join(tmpdir(), 'flotilla-fake-ssh-'));
  record = join(bin, 'argv');
  // Records its argv (one argument per line) and exits with $FAKE_SSH_EXIT. As the remote end of
  // --tunnel (`fleetctl fd-forward SOCKET`) it runs our fd-forward locally, recording to argv.tunnel.
  const cli = cliWrapper(bin, 'flotilla-from-source');
  writeFileSync(
    join(bin, 'ssh'),
    [
      '#!/bin/sh',
      'for last; do :; done',
      'case " $* " in',
      `  *" fleetctl fd-forward "*) printf '%s\\n' "$@" > '${record}.tunnel'; exec '${cli}' fd-forward "$last" ;;`,
      'esac',
      `printf '%s\\n' "$@" > '${record}'`,
      'exit "${FAKE_SSH_EXIT:-0}"',
      '',
    ].join('\n'),
  );
  chmodSync(join(bin, 'ssh'), 0o755);
});
afterAll(async () => {
  await api.close();
  rmSync(bin, { recursive: true, force: true });
});
beforeEach(() => rmSync(record, { force: true }));

const env = (extra: NodeJS.ProcessEnv = {}) => ({ PATH: `${bin}:/usr/bin:/bin`, HOME: '/home/op', ...extra });
const argv = () => readFileSync(record, 'utf8').trimEnd().split('\n');

describe('ssh', () => {
  it('connects to a machine by unique ID prefix as core, port 22, with fleetctl-like options', async () => {
    const r = await api.run(['ssh', 'a1e5'], env());
    expect(r).toEqual({ code: 0, out: '', err: '' });
    expect(argv()).toEqual(['-l', 'core', '-o', 'ConnectTimeout=10', '-p', '22', '--', '10.214.0.12']);
  });

  it("connects to a unit's machine and runs the words after -- there, keeping them as separate arguments", async () => {
    const r = await api.run(['ssh', 'web@1.service', '--', 'systemctl', 'status', '-l', 'a b'], env());
    expect(r.code).toBe(0);
    expect(argv()).toEqual([
      '-l',
      'core',
      '-o',
      'ConnectTimeout=10',
      '-p',
      '22',
      '--',
      '10.214.0.12',
      'systemctl',
      'status',
      '-l',
      'a b',
    ]);
  });

  it('--machine / --unit skip the guessing; -A forwards the agent; --ssh-port and global SSH flags apply', async () => {
    await api.run(
      [
        '--ssh-username=ops',
        '--ssh-timeout=2.5',
        '--known-hosts-file=~/.fleetctl/known_hosts',
        'ssh',
        '-A',
        '--ssh-port=2222',
        `--machine=${M2.slice(0, 6)}`,
        'uptime',
      ],
      env(),
    );
    expect(argv()).toEqual([
      '-l',
      'ops',
      '-o',
      'ConnectTimeout=3',
      '-o',
      'UserKnownHostsFile=/home/op/.fleetctl/known_hosts',
      '-A',
      '-p',
      '2222',
      '--',
      '10.214.0.12',
      'uptime',
    ]);
    await api.run(['ssh', '--forward-agent', '--unit=hello', '--', 'true'], env());
    expect(argv()).toContain('-A');
    expect(argv().slice(-2)).toEqual(['10.214.0.11', 'true']);
    await api.run(['ssh', '--A', '-u', 'hello'], env());
    expect(argv()).toContain('-A');
  });

  it('--strict-host-key-checking=false (or FLEETCTL_STRICT_HOST_KEY_CHECKING=false) skips host keys', async () => {
    const skip = [
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'LogLevel=ERROR',
    ];
    await api.run(['--strict-host-key-checking=false', 'ssh', 'hello.service'], env());
    expect(argv().join(' ')).toContain(skip.join(' '));
    await api.run(['ssh', 'hello.service'], env({ FLEETCTL_STRICT_HOST_KEY_CHECKING: 'false' }));
    expect(argv().join(' ')).toContain(skip.join(' '));
    await api.run(
      ['ssh', 'hello.service'],
      env({ FLOTILLA_STRICT_HOST_KEY_CHECKING: 'true', FLEETCTL_STRICT_HOST_KEY_CHECKING: 'false' }),
    );
    expect(argv().join(' ')).not.toContain('StrictHostKeyChecking');
    const bad = await api.run(['ssh', 'hello.service'], env({ FLEETCTL_STRICT_HOST_KEY_CHECKING: 'maybe' }));
    expect(bad.code).toBe(64);
    expect(bad.err).toContain('FLEETCTL_STRICT_HOST_KEY_CHECKING="maybe": not a boolean');
  });

  it('--tunnel: API calls go through `ssh BASTION fleetctl fd-forward SOCKET`, ssh through ProxyJump', async () => {
    const r = await api.run(['--tunnel=10.214.0.13:2200', 'ssh', 'hello.service'], env());
    expect(r).toEqual({ code: 0, out: '', err: '' });
    expect(argv()).toEqual([
      '-l',
      'core',
      '-o',
      'ConnectTimeout=10',
      '-J',
      'core@10.214.0.13:2200',
      '-p',
      '22',
      '--',
      '10.214.0.11',
    ]);
    expect(readFileSync(`${record}.tunnel`, 'utf8').trimEnd().split('\n')).toEqual([
      '-l',
      'core',
      '-o',
      'ConnectTimeout=10',
      '-p',
      '2200',
      '-T',
      '--',
      '10.214.0.13',
      'fleetctl',
      'fd-forward',
      api.socket,
    ]);
    // Any command works through the tunnel, e.g. a list.
    const list = await api.run(
      ['--tunnel=10.214.0.13', 'list-machines', '--no-legend', '--fields=ip'],
      env(),
    );
    expect(list).toEqual({ code: 0, out: '10.214.0.11\n10.214.0.12\n-\n', err: '' });
  }, 60_000);

  it("exits with ssh's status (the remote command's, or 255)", async () => {
    expect((await api.run(['ssh', 'hello.service', '--', 'false'], env({ FAKE_SSH_EXIT: '7' }))).code).toBe(
      7,
    );
    expect((await api.run(['ssh', 'hello.service'], env({ FAKE_SSH_EXIT: '255' }))).code).toBe(255);
  });

  it('says so when there is no ssh to run', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'flotilla-no-ssh-'));
    const errs: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = (s: string) => (errs.push(String(s)), true);
    try {
      const r = await api.run(['ssh', 'hello.service'], { PATH: empty });
      expect(r.code).toBe(1);
    } finally {
      process.stderr.write = write;
      rmSync(empty, { recursive: true, force: true });
    }
    expect(errs.join('')).toBe('Failed building SSH client: ssh is not installed (no ssh in PATH)\n');
  });

  it('refuses values ssh would read as options', async () => {
    const r = await api.run(['--ssh-username=-oProxyCommand=x', 'ssh', 'hello.service'], env());
    expect(r.code).toBe(64);
    expect(r.err).toContain('invalid argument "-oProxyCommand=x" for "--ssh-username" flag');
    expect((await api.run(['ssh', '--ssh-port=22x', 'hello.service'], env())).code).toBe(64);
  });
});
