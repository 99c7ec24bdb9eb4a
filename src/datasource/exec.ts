/**
 * The one way datasources run host tools (blkid, mount, umount, vmware-rpctool, vmtoolsd): an argv
 * array, never a shell, with a timeout and bounded output.
 */
import { execFile } from 'node:child_process';

export interface ExecResult {
  /** Exit code; undefined when the process was killed (timeout) or could not start. */
  code: number | undefined;
  stdout: Buffer;
  stderr: string;
  /** 'ENOENT' when the program could not be started (not installed), 'TIMEOUT' when killed, else the error code. */
  error?: string;
}

export type Exec = (file: string, args: string[], opts?: { timeoutMs?: number }) => Promise<ExecResult>;

export const MAX_OUTPUT = 16 * 1024 * 1024 + 4096;

/** Run file with args (no shell). Never rejects: the result says what happened. */
export const execArgv: Exec = (file, args, opts = {}) =>
  new Promise((resolve) => {
    execFile(
      file,
      args,
      {
        encoding: 'buffer',
        timeout: opts.timeoutMs ?? 10_000,
        killSignal: 'SIGKILL',
        maxBuffer: MAX_OUTPUT,
        shell: false,
        windowsHide: true,
      },
      (err, stdout, stderr) => {
        const res: ExecResult = { code: 0, stdout, stderr: stderr.toString('utf8') };
        if (err) {
          const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: unknown };
          if (e.code === 'ENOENT' || e.code === 'EACCES') {
            res.code = undefined;
            res.error = 'ENOENT';
          } else if (typeof e.code === 'number') {
            res.code = e.code;
          } else {
            res.code = undefined;
            res.error = e.killed ? 'TIMEOUT' : String(e.code ?? e.message);
          }
        }
        resolve(res);
      },
    );
  });
