/**
 * Real QEMU VMs (test/env/vm) for integration tests.
 *
 *   const vm = useVm('vmboot', { configDrive: dir });   // at the top of a describeVm block
 *   it('...', async () => { expect((await vm().run('node', '--version')).stdout).toMatch(/^v/) });
 *
 * `useVm` boots one VM in beforeAll (building the cached Debian image first when needed, see
 * test/env/vm/image.sh) and shares it across the file's tests; afterAll always powers it off
 * (`stop.sh --kill --purge`: the overlay disk is thrown away), also when the boot failed half-way.
 *
 * Gate: `describeVm` is `describe` when QEMU is installed and we are root; otherwise it skips the
 * suite with a message, or throws with TESTENV_REQUIRED=1 (CI), as test/support/testbed.ts does.
 * A missing build (dist/) fails, it never skips: `npm run build` first.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe } from 'vitest';

/** Folder of the VM scripts. */
export const vmDir: string = fileURLToPath(new URL('../env/vm/', import.meta.url));
const projectDir: string = fileURLToPath(new URL('../../', import.meta.url));

function which(cmd: string): string | undefined {
  for (const d of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    if (d !== '' && existsSync(`${d}/${cmd}`)) return `${d}/${cmd}`;
  }
  for (const d of ['/usr/bin', '/usr/sbin', '/usr/local/bin']) {
    if (existsSync(`${d}/${cmd}`)) return `${d}/${cmd}`;
  }
  return undefined;
}

/** Path of qemu-system-x86_64, or undefined when QEMU is not installed. */
export const qemuPath: string | undefined = which('qemu-system-x86_64');
const isRoot = process.getuid?.() === 0;

type Describe = typeof describe;
function gate(up: boolean, message: string): Describe {
  if (up) return describe;
  let warned = false;
  const check = (): void => {
    if (process.env.TESTENV_REQUIRED === '1') {
      throw new Error(`[testenv] ${message}; TESTENV_REQUIRED=1 forbids skipping`);
    }
    if (!warned) console.warn(`[testenv] skipping VM suites: ${message}`);
    warned = true;
  };
  const skip = describe.skip;
  return new Proxy<Describe>(describe, {
    apply(_t, thisArg, args: unknown[]) {
      check();
      return Reflect.apply(skip, thisArg, args) as unknown;
    },
    get(_t, prop) {
      check();
      if (prop === 'skipIf' || prop === 'runIf') return () => skip;
      return Reflect.get(skip, prop) as unknown;
    },
  });
}

/** `describe` for suites that boot VMs (see the module comment). */
export const describeVm: Describe = gate(
  qemuPath !== undefined && isRoot,
  qemuPath === undefined
    ? 'QEMU is not installed: run "sudo test/env/up.sh" (or apt-get install qemu-system-x86 qemu-utils xorriso)'
    : 'VMs need root (tap devices, the image build)',
);

export interface VmOptions {
  /** Folder with openstack/latest/{user_data,meta_data.json}, made into a config-2 ISO. */
  configDrive?: string;
  /** File handed to the guest as fw_cfg opt/com.coreos/config. */
  fwCfg?: string;
  memMb?: number;
  cpus?: number;
  /** LANs as boot.sh takes them: 'NET' or 'NET:ADDR/PREFIX'. */
  lans?: string[];
  /** Extra kernel command line. */
  append?: string;
  /** Seconds to wait for ssh (default 240). */
  timeoutS?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Quote one word for the guest's POSIX shell (ssh runs the remote command through it). */
export function shQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

function runFile(file: string, args: string[], timeoutMs: number, input?: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : err.killed ? 124 : 1;
        resolve({ stdout, stderr, code });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}

/** A running VM. */
export class Vm {
  constructor(
    readonly name: string,
    /** ms since the epoch when QEMU was started (power-on). */
    readonly startedMs: number,
    /** ms since the epoch of the first successful ssh. */
    readonly sshMs: number,
  ) {}

  private get stateDir(): string {
    return execFileSync('bash', ['-c', 'source "$1/lib.sh"; vm_dir "$2"', '_', vmDir, this.name], {
      encoding: 'utf8',
    }).trim();
  }

  /** Run argv in the guest as root (each word quoted for the remote shell). */
  run(...argv: string[]): Promise<RunResult> {
    return this.sh(argv.map(shQuote).join(' '));
  }

  /** Run a shell script in the guest as root; `input` goes to its stdin. */
  sh(script: string, opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
    return runFile('bash', [`${vmDir}ssh.sh`, this.name, script], opts.timeoutMs ?? 120_000, opts.input);
  }

  /** Like run, but throws (with stderr) unless the command exits 0; returns stdout. */
  async check(...argv: string[]): Promise<string> {
    const r = await this.run(...argv);
    if (r.code !== 0) {
      throw new Error(`${argv.join(' ')} in VM ${this.name} exited ${r.code}: ${r.stderr.trim()}`);
    }
    return r.stdout;
  }

  /** The serial console so far (kernel and systemd messages). */
  console(): string {
    try {
      return readFileSync(`${this.stateDir}/serial.log`, 'utf8');
    } catch {
      return '';
    }
  }
}

function envScript(args: string[], timeoutMs: number): Promise<RunResult> {
  return runFile('bash', args, timeoutMs);
}

/** Build (or find) the image; boot VM `name`; wait for ssh. Throws with boot.sh's stderr. */
export async function bootVm(name: string, opts: VmOptions = {}): Promise<Vm> {
  if (!existsSync(`${projectDir}dist/cli/main.js`)) {
    throw new Error(`${projectDir}dist is not built: run "npm run build" before the VM tests`);
  }
  const image = await envScript([`${vmDir}image.sh`], 900_000);
  if (image.code !== 0) throw new Error(`test/env/vm/image.sh failed:\n${image.stderr}`);
  const args = [`${vmDir}boot.sh`, name, '--fresh'];
  if (opts.configDrive !== undefined) args.push('--config-drive', opts.configDrive);
  if (opts.fwCfg !== undefined) args.push('--fw-cfg', opts.fwCfg);
  if (opts.memMb !== undefined) args.push('--mem', String(opts.memMb));
  if (opts.cpus !== undefined) args.push('--cpus', String(opts.cpus));
  for (const l of opts.lans ?? []) args.push('--lan', l);
  if (opts.append !== undefined) args.push('--append', opts.append);
  const timeoutS = opts.timeoutS ?? 240;
  args.push('--timeout', String(timeoutS));
  const r = await envScript(args, (timeoutS + 60) * 1000);
  if (r.code !== 0) throw new Error(`boot.sh ${name} failed (exit ${r.code}):\n${r.stderr}`);
  const dir = execFileSync('bash', ['-c', 'source "$1/lib.sh"; vm_dir "$2"', '_', vmDir, name], {
    encoding: 'utf8',
  }).trim();
  const num = (f: string): number => Number(readFileSync(`${dir}/${f}`, 'utf8').trim());
  return new Vm(name, num('started_ms'), num('ssh_ms'));
}

/** Power VM `name` off at once and delete its state (never throws; returns stop.sh's result). */
export function stopVm(name: string): Promise<RunResult> {
  return envScript([`${vmDir}stop.sh`, name, '--kill', '--purge'], 60_000);
}

/**
 * Boot VM `name` once for the enclosing describe block (beforeAll) and stop it in afterAll.
 * Returns an accessor that throws when the boot failed.
 */
export function useVm(name: string, opts: VmOptions | (() => VmOptions) = {}): () => Vm {
  let vm: Vm | undefined;
  let failure: Error | undefined;
  beforeAll(
    async () => {
      try {
        vm = await bootVm(name, typeof opts === 'function' ? opts() : opts);
      } catch (e) {
        failure = e as Error;
        throw e;
      }
    },
    // image build when not cached (~2-3 min) + boot under TCG on a loaded host
    1_200_000,
  );
  afterAll(async () => {
    const r = await stopVm(name);
    if (r.code !== 0) console.warn(`[testenv] stop.sh ${name}: ${r.stderr.trim()}`);
  }, 90_000);
  return () => {
    if (vm === undefined) throw failure ?? new Error(`VM ${name} is not booted (yet)`);
    return vm;
  };
}
