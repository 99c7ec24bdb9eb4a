/**
 * The real test environment (test/env: loopback etcd cluster, Docker engine, systemd-nspawn
 * machines) as seen from a test file. State is read once, when this module is imported, from
 * `test/env/env.sh --json` (no root needed).
 *
 * Gates: `describeEtcd`, `describeEtcdCluster`, `describeDocker`, `describeSystemd` are `describe`
 * when their part is up. When it is not, they skip the suite with a console message, or throw when
 * TESTENV_REQUIRED=1 (CI), so that CI never silently skips a real-daemon suite.
 *
 * Reaching a machine's systemd from the host with dbus-next:
 *   dbus.sessionBus({ busAddress: machineBusAddress('m1') })
 * (`dbus.systemBus()` ignores its options and only reads DBUS_SYSTEM_BUS_ADDRESS.)
 *
 * The helpers that change shared state (`killEtcdMember`, `partition`, `powerCut`, ...) need root
 * and run test/env scripts synchronously; heal in afterEach/afterAll.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe } from 'vitest';

/** Folder of the test/env scripts. */
export const envDir: string = fileURLToPath(new URL('../env/', import.meta.url));

function readEnv(): Record<string, string> {
  const script = `${envDir}env.sh`;
  if (!existsSync(script)) return {};
  try {
    const out = execFileSync('bash', [script, '--json'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 15_000,
    });
    const parsed: unknown = JSON.parse(out);
    if (typeof parsed !== 'object' || parsed === null) return {};
    const vars: Record<string, string> = {};
    for (const [k, v] of Object.entries(parsed)) if (typeof v === 'string') vars[k] = v;
    return vars;
  } catch (e) {
    console.warn(`[testenv] cannot read ${script} --json: ${(e as Error).message}`);
    return {};
  }
}

/** Everything env.sh printed (TESTENV_* keys), as read at import time. */
export const testenv: Readonly<Record<string, string>> = Object.freeze(readEnv());

function list(v: string | undefined): string[] {
  return (v ?? '').split(',').filter((s) => s !== '');
}

/** Running machines, e.g. ['m1', 'm2', 'm3']. */
export const machines: readonly string[] = list(testenv.TESTENV_MACHINES);
/** Loopback etcd client URLs (member i is etcdEndpoints[i - 1]), or undefined when etcd is not up. */
export const etcdEndpoints: string[] | undefined = testenv.TESTENV_ETCD_ENDPOINTS
  ? list(testenv.TESTENV_ETCD_ENDPOINTS)
  : undefined;
/** Number of loopback etcd members (0 when not up). */
export const etcdMembers: number = Number(testenv.TESTENV_ETCD_MEMBERS ?? '0') || 0;
/** Client URLs of the etcd members inside the machines (etcd.sh up --machines), if up. */
export const machinesEtcdEndpoints: string[] | undefined = testenv.TESTENV_MACHINES_ETCD_ENDPOINTS
  ? list(testenv.TESTENV_MACHINES_ETCD_ENDPOINTS)
  : undefined;
/** Path of the Docker engine's socket (for dockerode: `new Docker({ socketPath })`), if up. */
export const dockerSocket: string | undefined = testenv.TESTENV_DOCKER_SOCKET;
/** The host's address on the machines' network (machines reach the host there). */
export const hostIp: string | undefined = testenv.TESTENV_HOST_IP;
/**
 * Where the machines see this checkout: /project (machines.sh binds the repo there), or another
 * checkout made visible with TESTENV_BIND_RO and named by TESTENV_MACHINE_PROJECT.
 */
export const machineProject: string = process.env.TESTENV_MACHINE_PROJECT ?? '/project';

function machineVar(m: string, suffix: string): string {
  const v = testenv[`TESTENV_${m.toUpperCase()}_${suffix}`];
  if (v === undefined) {
    throw new Error(
      `machine ${m} is not running (running: ${machines.join(',') || 'none'}; test/env/machines.sh up)`,
    );
  }
  return v;
}
/** D-Bus address (`unix:path=...`) of machine m's system bus, usable from the host. */
export function machineBusAddress(m: string): string {
  return machineVar(m, 'BUS');
}
/** IPv4 address of machine m. */
export function machineIp(m: string): string {
  return machineVar(m, 'IP');
}

/**
 * Run a test/env script synchronously (execFile, never a shell string) and return its stdout.
 * Throws when it exits non-zero (the error carries the script's stderr).
 */
export function env(script: string, ...args: string[]): string {
  if (!/^[a-z][a-z0-9-]*\.sh$/.test(script)) throw new Error(`not a test/env script: ${script}`);
  return execFileSync('bash', [`${envDir}${script}`, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  });
}

/** Run a command inside machine m (clean environment, root) and return its stdout. */
export function machineExec(m: string, ...cmd: string[]): string {
  return env('exec.sh', m, ...cmd);
}
/** Drop all of m's traffic, or only the traffic with `peers` ('mJ' or 'host'). Silent drop. */
export function partition(m: string, ...peers: string[]): void {
  env('partition.sh', m, 'on', ...peers);
}
/** Heal m's partition. */
export function heal(m: string): void {
  env('partition.sh', m, 'off');
}
/** Power cut: SIGKILL every process of machine m at once. `bootMachine(m)` boots it again. */
export function powerCut(m: string): void {
  env('machines.sh', 'down', '--kill', m);
}
/** Clean poweroff of machine m. */
export function shutdownMachine(m: string): void {
  env('machines.sh', 'down', m);
}
/** Boot machine m (same disk, machine-id and address); returns when its systemd is up. */
export function bootMachine(m: string): void {
  env('machines.sh', 'up', m);
}
/** kill -9 loopback etcd member i (1-based). */
export function killEtcdMember(i: number): void {
  env('etcd.sh', 'kill', String(i));
}
/** Restart every loopback etcd member that is down, on its old data; returns when all are healthy. */
export function restartEtcd(): void {
  env('etcd.sh', 'up');
}

type Describe = typeof describe;
const required = process.env.TESTENV_REQUIRED === '1';

/**
 * A `describe` for a part of the environment: itself when the part is up; otherwise a
 * `describe.skip` that warns once, or throws (TESTENV_REQUIRED=1) as soon as a suite uses it.
 */
function gate(part: string, up: boolean, hint: string): Describe {
  if (up) return describe;
  const message = `${part} is not up: ${hint} (see test/env/README.md)`;
  let warned = false;
  const check = (): void => {
    if (required) throw new Error(`[testenv] ${message}; TESTENV_REQUIRED=1 forbids skipping`);
    if (!warned) console.warn(`[testenv] skipping suites that need ${part}: ${message}`);
    warned = true;
  };
  const skip = describe.skip;
  return new Proxy<Describe>(describe, {
    apply(_target, thisArg, args: unknown[]) {
      check();
      return Reflect.apply(skip, thisArg, args) as unknown;
    },
    get(_target, prop) {
      check();
      // skipIf/runIf: the part is down, so whatever the condition the suite is skipped
      if (prop === 'skipIf' || prop === 'runIf') return () => skip;
      return Reflect.get(skip, prop) as unknown;
    },
  });
}

export const describeEtcd: Describe = gate(
  'etcd',
  etcdEndpoints !== undefined && etcdEndpoints.length > 0,
  'run "sudo test/env/etcd.sh up"',
);
export const describeEtcdCluster: Describe = gate(
  'a loopback etcd cluster of at least 3 members',
  etcdEndpoints !== undefined && etcdEndpoints.length >= 3,
  'run "sudo test/env/etcd.sh up 3"',
);
export const describeDocker: Describe = gate(
  'the Docker engine',
  dockerSocket !== undefined,
  'run "sudo test/env/docker.sh up"',
);
export const describeSystemd: Describe = gate(
  'systemd machines',
  machines.length > 0,
  'run "sudo test/env/machines.sh up 3"',
);
