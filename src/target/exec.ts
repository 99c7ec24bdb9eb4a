/**
 * How the executor runs host tools (useradd, usermod, groupadd, chpasswd, chgpasswd, hostname,
 * hostnamectl): an argv array, never a shell, optional stdin (where password hashes travel), a
 * timeout, bounded output. Injectable so tests can record argv while still running the real tool.
 */
import { spawn } from 'node:child_process';

export interface RunResult {
  /** Exit code; undefined when it could not start or was killed. */
  code: number | undefined;
  stderr: string;
  /** 'ENOENT' when the program is not installed, 'TIMEOUT' when it was killed. */
  error?: string;
}

export type Run = (
  file: string,
  args: readonly string[],
  opts?: { stdin?: Buffer | string },
) => Promise<RunResult>;

const MAX_STDERR = 64 * 1024;

export const runArgv: Run = (file, args, opts = {}) =>
  new Promise((resolve) => {
    const child = spawn(file, [...args], {
      shell: false,
      stdio: ['pipe', 'ignore', 'pipe'],
      windowsHide: true,
    });
    let stderr = '';
    let settled = false;
    const done = (r: RunResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      done({ code: undefined, stderr, error: 'TIMEOUT' });
    }, 60_000);
    child.stderr.on('data', (b: Buffer) => {
      if (stderr.length < MAX_STDERR) stderr += b.toString('utf8');
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      done({
        code: undefined,
        stderr,
        error: err.code === 'ENOENT' || err.code === 'EACCES' ? 'ENOENT' : String(err.code),
      });
    });
    child.on('close', (code) =>
      done({ code: code ?? undefined, stderr, ...(code === null ? { error: 'KILLED' } : {}) }),
    );
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.stdin ?? '');
  });
