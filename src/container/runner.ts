/**
 * `flotilla container run SPEC` — the main process of a generated container service — and
 * `flotilla container cleanup SPEC` (its ExecStopPost).
 *
 * run:
 *   1. Reads the run spec (JSON written by the agent) and the EnvironmentFile= files (a missing
 *      required file fails the start before anything is created: nothing runs half-configured).
 *   2. A container of the same name that carries this unit's and this machine's labels is stale:
 *      it is removed. One that does not is NOT ours: the start fails (E_DOCKER_NOT_OWNED).
 *   3. The image must be present (the agent pulls before the start); if it is not and PullPolicy is
 *      not `never` (a manual `systemctl start`, a Restart= after `docker rmi`), it is pulled here.
 *   4. Creates the container (labels flotilla.unit, flotilla.machine, flotilla.unit-hash; restart
 *      policy "no": systemd supervises), starts it, sends READY=1, and copies its output to stdout/
 *      stderr, i.e. the journal.
 *   5. Waits. The container's exit code becomes the runner's. SIGTERM (a stop) stops the container
 *      with StopTimeout (SIGTERM, then SIGKILL), removes it and exits 0: a requested stop is a clean
 *      stop. A container that exits on its own (failure) is kept for inspection.
 *   Every phase and the reason of a failure go to the status file (read by the agent for
 *   list-units/status) and, as one line, to stderr (the journal).
 *
 * cleanup (ExecStopPost, also after a crash or SIGKILL of the runner): stops the unit's container if
 * it still runs (ours only). Never removes it: it stays for inspection until the next start or
 * `flotilla gc`.
 */
import { readFileSync } from 'node:fs';
import { FlotillaError, isCode, isErrno } from '../lib/errors.js';
import { writeAtomic } from '../lib/fs.js';
import type { RunSpec } from './generate.js';
import {
  LABEL_MACHINE,
  LABEL_UNIT,
  LABEL_UNIT_HASH,
  type ContainerCreateSpec,
  type DockerPort,
  type PullProgress,
} from '../docker/port.js';
import type { ContainerSpec } from './spec.js';
import { checkEnvironment, parseEnvironmentFile } from './env-file.js';
import { SERVICE_LABEL } from '../discovery/services.js';

export type RunnerPhase = 'starting' | 'pulling' | 'running' | 'stopping' | 'exited' | 'failed';

/** What the runner records for the agent. */
export interface RunnerStatus {
  unit: string;
  phase: RunnerPhase;
  /** Why the unit failed (`docker unavailable: …`, `image pull failed: …`, `container exited with status 3`). */
  reason?: string;
  /** `docker` when dockerd could not be reached: the agent retries once Docker is back. */
  kind?: 'docker' | 'pull' | 'config' | 'container';
  containerId?: string;
  exitCode?: number;
  /** ms since the epoch. */
  at: number;
}

export interface RunnerIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** sd_notify (READY=1, STOPPING=1, STATUS=…). */
  notify(...assignments: string[]): Promise<void>;
  /** Resolves when a stop was requested (SIGTERM/SIGINT). */
  stopRequested: Promise<void>;
}

export function readRunSpec(path: string): RunSpec {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new FlotillaError(
      'E_NOT_FOUND',
      `container spec ${path}: ${isErrno(err, 'ENOENT') ? 'does not exist (is the unit installed by the flotilla agent?)' : (err as Error).message}`,
    );
  }
  let spec: RunSpec;
  try {
    spec = JSON.parse(text) as RunSpec;
  } catch (err) {
    // Not the parser's message: it quotes the text, and the spec holds the unit's secrets.
    const at = /position (\d+)/.exec((err as Error).message)?.[1];
    throw new FlotillaError(
      'E_CONTAINER_SPEC',
      `container spec ${path}: invalid JSON${at !== undefined ? ` at byte ${at}` : ''} (the agent writes this file; restart the unit through flotilla to rewrite it)`,
    );
  }
  if (spec?.version !== 1 || typeof spec.unit !== 'string' || typeof spec.container?.image !== 'string')
    throw new FlotillaError(
      'E_CONTAINER_SPEC',
      `container spec ${path}: not a flotilla run spec (version 1)`,
    );
  return spec;
}

export function writeStatus(path: string, status: RunnerStatus): void {
  try {
    writeAtomic(path, `${JSON.stringify(status)}\n`, { mode: 0o644 });
  } catch {
    // The status is a convenience for the agent; the journal has the same line.
  }
}

export function readStatus(path: string): RunnerStatus | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as RunnerStatus;
  } catch {
    return undefined;
  }
}

export { parseEnvironmentFile } from './env-file.js';

/** The environment of the container: EnvironmentFile= files first, Environment= wins (as docker run). */
export function containerEnvironment(
  spec: ContainerSpec,
  read = (p: string) => readFileSync(p, 'utf8'),
): string[] {
  const env = new Map<string, string>();
  for (const f of spec.environmentFiles) {
    let text: string;
    try {
      text = read(f.path);
    } catch (err) {
      if (f.optional && isErrno(err, 'ENOENT')) continue;
      throw new FlotillaError(
        'E_CONTAINER_SPEC',
        `EnvironmentFile ${f.path}: ${isErrno(err, 'ENOENT') ? 'does not exist on this machine' : (err as Error).message}`,
        { path: f.path },
      );
    }
    for (const [k, v] of parseEnvironmentFile(text, f.path)) env.set(k, v);
  }
  for (const [k, v] of spec.environment) env.set(k, v);
  // A hand-edited run spec too: nothing with a NUL reaches Docker.
  checkEnvironment(env);
  return [...env].map(([k, v]) => `${k}=${v}`);
}

/** Docker's create request for a run spec. */
export function createRequest(run: RunSpec, env: string[]): ContainerCreateSpec {
  const c = run.container;
  const req: ContainerCreateSpec = {
    name: c.name,
    image: c.image,
    env,
    labels: {
      ...c.labels,
      [LABEL_UNIT]: run.unit,
      [LABEL_MACHINE]: run.machineID,
      [LABEL_UNIT_HASH]: run.unitHash,
      // Service=NAME:PORT → flotilla.service=NAME:PORT[,…]: the agent registers it (discovery.ts).
      ...(c.services.length > 0
        ? { [SERVICE_LABEL]: c.services.map((s) => `${s.name}:${s.port}`).join(',') }
        : {}),
    },
    binds: c.volumes.map(
      (v) => `${v.source}:${v.target}${v.options.length > 0 ? `:${v.options.join(',')}` : ''}`,
    ),
    ports: c.publish,
    stopTimeout: c.stopTimeout,
  };
  if (c.exec) req.cmd = c.exec;
  if (c.user) req.user = c.user;
  if (c.network) req.network = c.network;
  if (c.health) {
    const ns = (s: number | undefined) => (s === undefined ? undefined : Math.round(s * 1e9));
    req.healthcheck = { test: ['CMD', ...c.health.cmd] };
    const iv = ns(c.health.intervalSec);
    const to = ns(c.health.timeoutSec);
    const sp = ns(c.health.startPeriodSec);
    if (iv !== undefined) req.healthcheck.intervalNs = iv;
    if (to !== undefined) req.healthcheck.timeoutNs = to;
    if (sp !== undefined) req.healthcheck.startPeriodNs = sp;
    if (c.health.retries !== undefined) req.healthcheck.retries = c.health.retries;
  }
  return req;
}

class RunFailure extends Error {
  constructor(
    readonly kind: NonNullable<RunnerStatus['kind']>,
    message: string,
  ) {
    super(message);
  }
}

function failureOf(err: unknown, what: string): RunFailure {
  if (err instanceof RunFailure) return err;
  if (isCode(err, 'E_DOCKER_UNAVAILABLE')) return new RunFailure('docker', err.message);
  if (isCode(err, 'E_IMAGE_PULL')) return new RunFailure('pull', err.message);
  if (isCode(err, 'E_CONTAINER_SPEC') || isCode(err, 'E_DOCKER_NOT_OWNED'))
    return new RunFailure('config', (err as Error).message);
  return new RunFailure('container', `${what}: ${(err as Error).message}`);
}

/**
 * Run the container of `run` until it exits or a stop is requested. Returns the exit code for the
 * runner process. Never throws.
 */
export async function runContainer(run: RunSpec, docker: DockerPort, io: RunnerIo): Promise<number> {
  const c = run.container;
  const status = (s: Omit<RunnerStatus, 'unit' | 'at'>) =>
    writeStatus(run.statusFile, { unit: run.unit, at: Date.now(), ...s });
  const say = (line: string) => io.stderr.write(`flotilla: ${line}\n`);
  let stopping = false;
  void io.stopRequested.then(() => (stopping = true));
  let containerId: string | undefined;
  status({ phase: 'starting' });
  try {
    let env: string[];
    try {
      env = containerEnvironment(c);
    } catch (err) {
      throw failureOf(err, 'environment');
    }
    // (No separate ping: the first call says "docker unavailable" just as well.)
    // A stale container of our name: ours → remove; anybody else's → refuse.
    const existing = await docker.inspectContainer(c.name);
    if (existing) {
      const owner = existing.labels[LABEL_UNIT];
      const machine = existing.labels[LABEL_MACHINE];
      if (owner !== run.unit || machine !== run.machineID) {
        const whose =
          owner === undefined
            ? 'it was not created by flotilla'
            : owner !== run.unit
              ? `it belongs to unit ${owner}`
              : `it belongs to machine ${machine ?? '?'}`;
        throw new RunFailure(
          'config',
          `a container named ${c.name} already exists and ${whose}; flotilla will not remove it (remove or rename it, or set Name= in [Container])`,
        );
      }
      say(`removing the stale container ${c.name} (${existing.id.slice(0, 12)}, ${existing.state})`);
      await docker.removeContainer(existing.id, { force: true });
    }

    // Create; an absent image (the agent pulls before the start, but a manual `systemctl start` or
    // a Restart= after `docker rmi` may find none) is pulled here unless PullPolicy=never.
    const request = createRequest(run, env);
    try {
      containerId = await docker.createContainer(request);
    } catch (err) {
      if (!isCode(err, 'E_DOCKER_CALL') || err.details.status !== 404 || (await docker.inspectImage(c.image)))
        throw failureOf(err, `create container ${c.name}`);
      if (c.pullPolicy === 'never')
        throw new RunFailure('pull', `image ${c.image} is not present on this machine (PullPolicy=never)`);
      status({ phase: 'pulling' });
      say(`pulling ${c.image}`);
      let last = 0;
      await docker.pullImage(c.image, (p: PullProgress) => {
        if (Date.now() - last > 5000) {
          last = Date.now();
          say(`pulling ${c.image}: ${p.id ? `${p.id} ` : ''}${p.status}`);
        }
      });
      if (stopping) return 0;
      try {
        containerId = await docker.createContainer(request);
      } catch (err2) {
        throw failureOf(err2, `create container ${c.name}`);
      }
    }
    try {
      await docker.startContainer(containerId);
    } catch (err) {
      const f = failureOf(err, `start container ${c.name}`);
      await docker.removeContainer(containerId, { force: true }).catch(() => undefined);
      throw f;
    }
    say(`container ${c.name} (${containerId.slice(0, 12)}) started from ${c.image}`);
    // The status file says running before READY=1 goes out (whoever waits for READY reads it).
    status({ phase: 'running', containerId });
    // Output to the journal (the whole backlog of this new container, so nothing is lost) and
    // READY=1, at the same time.
    const [follower] = await Promise.all([
      docker.followLogs(containerId, { stdout: io.stdout, stderr: io.stderr }).catch((err: Error) => {
        say(`cannot follow the container's output: ${err.message}`);
        return undefined;
      }),
      io.notify('READY=1', `STATUS=container ${c.name} running`),
    ]);

    const id = containerId;
    const stop = io.stopRequested.then(async () => {
      status({ phase: 'stopping', containerId: id });
      await io.notify('STOPPING=1');
      say(`stopping container ${c.name} (timeout ${c.stopTimeout}s)`);
      await docker.stopContainer(id, c.stopTimeout);
    });
    stop.catch(() => undefined);
    let code: number;
    try {
      code = await docker.waitContainer(id);
    } catch (err) {
      follower?.close();
      throw failureOf(err, `wait for container ${c.name}`);
    }
    // Let the last lines reach the journal.
    if (follower) await Promise.race([follower.done, new Promise((r) => setTimeout(r, 1000))]);
    follower?.close();
    if (stopping) {
      await stop.catch((err: Error) => say(`stop: ${err.message}`));
      // A requested stop removes the container (its output is in the journal), like Quadlet's
      // --rm; a container that failed on its own stays for inspection until the next start or gc.
      await docker.removeContainer(id).catch((err: Error) => say(`remove: ${err.message}`));
      status({ phase: 'exited', containerId: id, exitCode: code });
      say(`container ${c.name} stopped (exit status ${code}) and removed`);
      return 0;
    }
    // dockerd stopping kills its containers: that is Docker going away, not the container failing.
    if (code !== 0) {
      const down = await docker.ping().then(
        () => undefined,
        (err: Error) => err,
      );
      if (down) throw failureOf(down, 'ping');
    }
    const info = await docker.inspectContainer(id).catch(() => undefined);
    const oom = info?.oomKilled ? ' (killed: out of memory)' : '';
    if (code === 0) {
      status({ phase: 'exited', containerId: id, exitCode: 0 });
      say(`container ${c.name} exited with status 0`);
    } else {
      const reason = `container exited with status ${code}${oom}`;
      status({ phase: 'failed', kind: 'container', reason, containerId: id, exitCode: code });
      say(reason);
    }
    return Math.max(0, Math.min(255, code));
  } catch (err) {
    const f = failureOf(err, 'container');
    status({ phase: 'failed', kind: f.kind, reason: f.message, ...(containerId ? { containerId } : {}) });
    say(f.message);
    // A stop requested while we failed is still a clean stop.
    return stopping ? 0 : 1;
  }
}

/** ExecStopPost: stop the unit's container if it still runs (ours only). Never throws. */
export async function cleanupContainer(
  run: RunSpec,
  docker: DockerPort,
  say: (line: string) => void,
): Promise<void> {
  try {
    const info = await docker.inspectContainer(run.container.name);
    if (!info || !info.running) return;
    if (info.labels[LABEL_UNIT] !== run.unit || info.labels[LABEL_MACHINE] !== run.machineID) return;
    say(`stopping container ${info.name} left running (timeout ${run.container.stopTimeout}s)`);
    await docker.stopContainer(info.id, run.container.stopTimeout);
  } catch (err) {
    say(`cleanup: ${(err as Error).message}`);
  }
}
