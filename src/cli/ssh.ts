/**
 * The system `ssh` as fleetctl's SSH client: argv built from fleetctl's global flags
 * (`--ssh-username`, `--ssh-timeout`, `--strict-host-key-checking`, `--known-hosts-file`,
 * `--tunnel`), run with execFile/spawn semantics (an argv array, never a local shell).
 *
 * fleetctl spoke SSH itself (golang.org/x/crypto/ssh, its own ~/.fleetctl/known_hosts); the system
 * ssh brings the user's keys, agent, ~/.ssh/config and known_hosts for free.
 */
import { homedir } from 'node:os';
import { UsageError } from './command.js';
import { secondsFlag } from './globals.js';

type Globals = Record<string, string | boolean | undefined>;

/** `host[:port]` (fleetctl appends :22) → host and port; IPv6 in brackets. */
export function splitHostPort(s: string): { host: string; port: string } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (v6) return { host: v6[1]!, port: v6[2] ?? '22' };
  const i = s.lastIndexOf(':');
  if (i > 0 && s.indexOf(':') === i && /^\d+$/.test(s.slice(i + 1))) {
    return { host: s.slice(0, i), port: s.slice(i + 1) };
  }
  return { host: s, port: '22' };
}

function expandHome(p: string, env: NodeJS.ProcessEnv): string {
  if (p === '~' || p.startsWith('~/')) return `${env.HOME ?? homedir()}${p.slice(1)}`;
  return p;
}

/** Options every ssh we run shares: user, connect timeout, host-key policy, bastion. */
export function sshOptions(g: Globals, env: NodeJS.ProcessEnv, opts: { tunnel?: boolean } = {}): string[] {
  const user = String(g['ssh-username'] ?? 'core');
  if (user === '' || user.startsWith('-')) {
    throw new UsageError(`invalid argument ${JSON.stringify(user)} for "--ssh-username" flag`);
  }
  const timeout = Math.max(1, Math.ceil(secondsFlag('ssh-timeout', g['ssh-timeout'], 10)));
  const argv = ['-l', user, '-o', `ConnectTimeout=${timeout}`];
  if (g['strict-host-key-checking'] === false) {
    argv.push('-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR');
  } else if (typeof g['known-hosts-file'] === 'string' && g['known-hosts-file'] !== '') {
    argv.push('-o', `UserKnownHostsFile=${expandHome(g['known-hosts-file'], env)}`);
  }
  if (opts.tunnel !== false && typeof g.tunnel === 'string' && g.tunnel !== '') {
    const { host, port } = splitHostPort(g.tunnel);
    if (host.startsWith('-'))
      throw new UsageError(`invalid argument ${JSON.stringify(g.tunnel)} for "--tunnel" flag`);
    argv.push('-J', `${user}@${host.includes(':') ? `[${host}]` : host}:${port}`);
  }
  return argv;
}

/** A port flag (`--ssh-port`): 1..65535. */
export function portFlag(raw: string | boolean | undefined): string {
  const s = String(raw ?? '22');
  const n = Number(s);
  if (!/^\d+$/.test(s) || n < 1 || n > 65535) {
    throw new UsageError(`invalid argument ${JSON.stringify(s)} for "--ssh-port" flag`);
  }
  return String(n);
}
