/**
 * `DockerPort` over dockerode and the engine's unix socket (config `docker_socket`, default
 * /var/run/docker.sock).
 *
 * Every unary call has a deadline (`callTimeoutMs`, default 30 s; pulls, waits and streams have
 * none) so a wedged dockerd cannot hang the agent. Transport failures (no socket, refused, reset,
 * deadline) become E_DOCKER_UNAVAILABLE `docker unavailable: <cause>`; HTTP errors from dockerd
 * become E_DOCKER_CALL with `details.status`; pull failures (including the error lines dockerd sends
 * inside a 200 progress stream) become E_IMAGE_PULL.
 */
import { Writable } from 'node:stream';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type Docker from 'dockerode';
import { FlotillaError } from '../lib/errors.js';
import { slimDockerode } from './slim.js';
import { followEvents } from './events.js';
import type {
  ContainerCreateSpec,
  ContainerInfo,
  ContainerSummary,
  DockerPort,
  EventStream,
  EventsOptions,
  FollowLogsOptions,
  HealthStatus,
  ImageInfo,
  LogFollower,
  LogLine,
  PullProgress,
} from './port.js';
import { HOST_PATHS } from '../lib/paths.js';

export const DEFAULT_DOCKER_SOCKET: string = HOST_PATHS.dockerSocket;

export interface DockerodeEngineOptions {
  socketPath?: string;
  /** Deadline for unary calls, ms (default 30000). */
  callTimeoutMs?: number;
  /** Deadline to open a connection, ms (default 3000). */
  connectTimeoutMs?: number;
}

const TRANSPORT_ERRNOS = new Set([
  'ENOENT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EACCES',
  'ETIMEDOUT',
  'ENOTCONN',
  'ESOCKETTIMEDOUT',
  'ECONNABORTED',
]);

interface DockerodeError extends Error {
  statusCode?: number;
  code?: string;
  json?: { message?: string } | string | null;
  reason?: string;
}

function dockerMessage(err: DockerodeError): string {
  const j = err.json;
  if (j && typeof j === 'object' && typeof j.message === 'string') return j.message;
  if (typeof j === 'string' && j.trim()) {
    try {
      const parsed = JSON.parse(j) as { message?: string };
      if (typeof parsed.message === 'string') return parsed.message;
    } catch {
      return j.trim();
    }
  }
  // "(HTTP code 500) server error - <dockerd's message> "
  return err.message.replace(/^\(HTTP code \d+\)\s*(?:[a-z ]+ - )?/, '').trim();
}

/** True when the error means dockerd could not be reached at all (not: dockerd said no). */
export function isTransportError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const e = err as DockerodeError;
  if (e.statusCode !== undefined) return false;
  if (e.code && TRANSPORT_ERRNOS.has(e.code)) return true;
  return e.name === 'AbortError' || e.name === 'TimeoutError' || /socket hang up|connect/i.test(e.message);
}

/** Map a dockerode error to the catalogue. `what` names the call ("inspect container x"). */
export function mapDockerError(err: unknown, what: string, socketPath: string): FlotillaError {
  if (err instanceof FlotillaError) return err;
  const e = (err instanceof Error ? err : new Error(String(err))) as DockerodeError;
  if (e.statusCode === undefined) {
    const cause =
      e.name === 'AbortError' || e.name === 'TimeoutError'
        ? `no answer from ${socketPath} in time`
        : e.code === 'ENOENT'
          ? `${socketPath} does not exist (is dockerd running?)`
          : e.code === 'ECONNREFUSED'
            ? `${socketPath} refused the connection (is dockerd running?)`
            : e.code === 'EACCES'
              ? `permission denied on ${socketPath}`
              : e.message;
    return new FlotillaError(
      'E_DOCKER_UNAVAILABLE',
      `docker unavailable: ${cause}`,
      { call: what, socket: socketPath },
      { cause: e },
    );
  }
  return new FlotillaError(
    'E_DOCKER_CALL',
    `docker: ${what}: ${dockerMessage(e)}`,
    { call: what, status: e.statusCode },
    { cause: e },
  );
}

/** `busybox` → `busybox:latest`; digests and explicit tags are kept. */
export function withDefaultTag(ref: string): string {
  if (ref.includes('@')) return ref;
  const lastSlash = ref.lastIndexOf('/');
  return ref.slice(lastSlash + 1).includes(':') ? ref : `${ref}:latest`;
}

function stripSlash(name: string): string {
  return name.startsWith('/') ? name.slice(1) : name;
}

function healthOf(state: { Health?: { Status?: string } } | undefined): HealthStatus {
  const s = state?.Health?.Status;
  return s === 'starting' || s === 'healthy' || s === 'unhealthy' ? s : 'none';
}

/** Split Docker's multiplexed (non-TTY) log framing into lines. */
export function demuxLogBuffer(buf: Buffer): LogLine[] {
  const out: LogLine[] = [];
  const partial: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };
  let off = 0;
  const framed =
    buf.length >= 8 && (buf[0] === 1 || buf[0] === 2) && buf[1] === 0 && buf[2] === 0 && buf[3] === 0;
  if (!framed) {
    for (const text of buf.toString('utf8').split('\n'))
      if (text !== '') out.push({ stream: 'stdout', text });
    return out;
  }
  while (off + 8 <= buf.length) {
    const stream = buf[off] === 2 ? 'stderr' : 'stdout';
    const len = buf.readUInt32BE(off + 4);
    const chunk = buf.subarray(off + 8, off + 8 + len).toString('utf8');
    off += 8 + len;
    const parts = (partial[stream] + chunk).split('\n');
    partial[stream] = parts.pop() ?? '';
    for (const text of parts) out.push({ stream, text });
  }
  for (const s of ['stdout', 'stderr'] as const) if (partial[s]) out.push({ stream: s, text: partial[s] });
  return out;
}

const requireCjs = createRequire(import.meta.url);
let DockerClass: typeof Docker | undefined;

/**
 * dockerode, loaded at the first call that needs it (with slimDockerode's stand-ins for what it
 * loads and flotilla never uses): an agent on a host without Docker never pays its ~25 MB.
 */
function loadDockerode(): typeof Docker {
  if (DockerClass === undefined) {
    slimDockerode();
    DockerClass = requireCjs('dockerode') as typeof Docker;
  }
  return DockerClass;
}

/** Whether this process has loaded dockerode (for the memory tests and `status`). */
export function dockerodeLoaded(): boolean {
  return DockerClass !== undefined;
}

export class DockerodeEngine implements DockerPort {
  readonly socketPath: string;
  private client: Docker | undefined;
  private readonly connectTimeoutMs: number;
  private readonly callTimeoutMs: number;
  private readonly streams = new Set<{ close(): void }>();

  constructor(opts: DockerodeEngineOptions = {}) {
    this.socketPath = opts.socketPath ?? DEFAULT_DOCKER_SOCKET;
    this.callTimeoutMs = opts.callTimeoutMs ?? 30_000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 3000;
  }

  /**
   * The dockerode client, made on first use. While the socket does not exist, calls fail as a
   * connect to a missing socket does (E_DOCKER_UNAVAILABLE), without loading dockerode.
   */
  private get docker(): Docker {
    if (this.client === undefined) {
      if (!existsSync(this.socketPath)) {
        throw Object.assign(new Error(`connect ENOENT ${this.socketPath}`), {
          code: 'ENOENT',
          syscall: 'connect',
          address: this.socketPath,
        });
      }
      const Client = loadDockerode();
      this.client = new Client({
        socketPath: this.socketPath,
        // docker-modem option; not in @types.
        ...({ connectionTimeout: this.connectTimeoutMs } as object),
      });
    }
    return this.client;
  }

  private signal(ms = this.callTimeoutMs): AbortSignal {
    return AbortSignal.timeout(ms);
  }

  private async call<T>(what: string, fn: (signal: AbortSignal) => Promise<T>, ms?: number): Promise<T> {
    try {
      return await fn(this.signal(ms));
    } catch (err) {
      throw mapDockerError(err, what, this.socketPath);
    }
  }

  /** Like `call`, but 404 resolves undefined. */
  private async call404<T>(what: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T | undefined> {
    try {
      return await fn(this.signal());
    } catch (err) {
      if ((err as DockerodeError).statusCode === 404) return undefined;
      throw mapDockerError(err, what, this.socketPath);
    }
  }

  async ping(timeoutMs = 3000): Promise<void> {
    // dockerode's ping takes options at runtime; its types only know the callback form.
    await this.call(
      'ping',
      (abortSignal) => {
        const docker = this.docker;
        const ping = docker.ping.bind(docker) as unknown as (o: object) => Promise<unknown>;
        return ping({ abortSignal });
      },
      timeoutMs,
    );
  }

  async inspectImage(ref: string): Promise<ImageInfo | undefined> {
    const info = await this.call404(`inspect image ${ref}`, (abortSignal) =>
      this.docker.getImage(ref).inspect({ abortSignal } as object),
    );
    if (!info) return undefined;
    return {
      id: info.Id,
      repoTags: info.RepoTags ?? [],
      repoDigests: info.RepoDigests ?? [],
      size: info.Size,
      created: Math.floor(Date.parse(info.Created) / 1000),
      labels: info.Config?.Labels ?? {},
    };
  }

  async pullImage(ref: string, onProgress?: (p: PullProgress) => void, signal?: AbortSignal): Promise<void> {
    const full = withDefaultTag(ref);
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.pull(full, signal ? { abortSignal: signal } : {});
    } catch (err) {
      const mapped = mapDockerError(err, `pull ${full}`, this.socketPath);
      if (mapped.code === 'E_DOCKER_UNAVAILABLE') throw mapped;
      throw new FlotillaError(
        'E_IMAGE_PULL',
        `image pull failed: ${full}: ${dockerMessage(err as DockerodeError)}`,
        {
          image: full,
          status: mapped.details.status,
        },
      );
    }
    await new Promise<void>((resolve, reject) => {
      let failure: string | undefined;
      this.docker.modem.followProgress(
        stream,
        (err: Error | null) => {
          if (err) {
            const mapped = mapDockerError(err, `pull ${full}`, this.socketPath);
            reject(
              mapped.code === 'E_DOCKER_UNAVAILABLE'
                ? mapped
                : new FlotillaError('E_IMAGE_PULL', `image pull failed: ${full}: ${mapped.message}`, {
                    image: full,
                  }),
            );
          } else if (failure !== undefined) {
            reject(
              new FlotillaError('E_IMAGE_PULL', `image pull failed: ${full}: ${failure}`, { image: full }),
            );
          } else resolve();
        },
        (line: {
          id?: string;
          status?: string;
          error?: string;
          errorDetail?: { message?: string };
          progressDetail?: { current?: number; total?: number };
        }) => {
          if (line.error !== undefined || line.errorDetail !== undefined) {
            failure = line.errorDetail?.message ?? line.error ?? 'unknown error';
            return;
          }
          if (!onProgress) return;
          const p: PullProgress = { status: line.status ?? '' };
          if (line.id !== undefined) p.id = line.id;
          if (line.progressDetail?.current !== undefined) p.current = line.progressDetail.current;
          if (line.progressDetail?.total !== undefined) p.total = line.progressDetail.total;
          try {
            onProgress(p);
          } catch {
            // A progress consumer's bug must not break the pull.
          }
        },
      );
    });
    // dockerd can end a stream without an error line when it is shut down mid-pull.
    if (!(await this.inspectImage(full))) {
      throw new FlotillaError(
        'E_IMAGE_PULL',
        `image pull failed: ${full}: the image is not present after the pull`,
        {
          image: full,
        },
      );
    }
  }

  async listImages(): Promise<ImageInfo[]> {
    const list = await this.call('list images', (abortSignal) =>
      this.docker.listImages({ all: false, abortSignal } as object),
    );
    return list.map((i) => ({
      id: i.Id,
      repoTags: (i.RepoTags ?? []).filter((t) => t !== '<none>:<none>'),
      repoDigests: (i.RepoDigests ?? []).filter((t) => t !== '<none>@<none>'),
      size: i.Size,
      created: i.Created,
      labels: i.Labels ?? {},
    }));
  }

  async removeImage(ref: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.call(`remove image ${ref}`, (abortSignal) =>
      this.docker.getImage(ref).remove({ force: opts.force ?? false, abortSignal } as object),
    );
  }

  async createContainer(spec: ContainerCreateSpec): Promise<string> {
    const exposed: Record<string, object> = {};
    const bindings: Record<string, Array<{ HostIp?: string; HostPort?: string }>> = {};
    for (const p of spec.ports ?? []) {
      const key = `${p.containerPort}/${p.protocol}`;
      exposed[key] = {};
      (bindings[key] ??= []).push({
        ...(p.hostIp ? { HostIp: p.hostIp } : {}),
        HostPort: p.hostPort !== undefined ? String(p.hostPort) : '',
      });
    }
    const hc = spec.healthcheck;
    const options: Docker.ContainerCreateOptions = {
      name: spec.name,
      Image: spec.image,
      ...(spec.cmd && spec.cmd.length > 0 ? { Cmd: spec.cmd } : {}),
      ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
      Env: spec.env ?? [],
      Labels: spec.labels ?? {},
      ...(spec.user ? { User: spec.user } : {}),
      ...(spec.stopTimeout !== undefined ? { StopTimeout: spec.stopTimeout } : {}),
      ...(spec.stopSignal ? { StopSignal: spec.stopSignal } : {}),
      ...(Object.keys(exposed).length > 0 ? { ExposedPorts: exposed } : {}),
      ...(hc
        ? {
            Healthcheck: {
              Test: hc.test,
              ...(hc.intervalNs !== undefined ? { Interval: hc.intervalNs } : {}),
              ...(hc.timeoutNs !== undefined ? { Timeout: hc.timeoutNs } : {}),
              ...(hc.retries !== undefined ? { Retries: hc.retries } : {}),
              ...(hc.startPeriodNs !== undefined ? { StartPeriod: hc.startPeriodNs } : {}),
            },
          }
        : {}),
      AttachStdout: false,
      AttachStderr: false,
      Tty: false,
      HostConfig: {
        ...(spec.network ? { NetworkMode: spec.network } : {}),
        Binds: spec.binds ?? [],
        ...(Object.keys(bindings).length > 0 ? { PortBindings: bindings } : {}),
        ...(spec.init ? { Init: true } : {}),
        // systemd supervises; dockerd must not restart behind its back.
        RestartPolicy: { Name: 'no' },
        AutoRemove: false,
      },
    };
    const c = await this.call(`create container ${spec.name}`, (abortSignal) =>
      this.docker.createContainer({ ...options, abortSignal }),
    );
    return c.id;
  }

  async startContainer(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).start({ abortSignal: this.signal() } as object);
    } catch (err) {
      if ((err as DockerodeError).statusCode === 304) return; // already running
      throw mapDockerError(err, `start container ${id}`, this.socketPath);
    }
  }

  async stopContainer(id: string, timeoutSec: number): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({
        t: Math.max(0, Math.ceil(timeoutSec)),
        // dockerd answers after the grace period (plus the kill); give it that long.
        abortSignal: this.signal(this.callTimeoutMs + timeoutSec * 1000),
      } as object);
    } catch (err) {
      const status = (err as DockerodeError).statusCode;
      if (status === 304 || status === 404) return; // already stopped / gone
      throw mapDockerError(err, `stop container ${id}`, this.socketPath);
    }
  }

  async killContainer(id: string, signal = 'SIGKILL'): Promise<void> {
    try {
      await this.docker.getContainer(id).kill({ signal, abortSignal: this.signal() } as object);
    } catch (err) {
      const status = (err as DockerodeError).statusCode;
      if (status === 404 || status === 409) return; // gone / not running
      throw mapDockerError(err, `kill container ${id}`, this.socketPath);
    }
  }

  async removeContainer(id: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({
        force: opts.force ?? false,
        v: opts.volumes ?? false,
        abortSignal: this.signal(),
      } as object);
    } catch (err) {
      const e = err as DockerodeError;
      if (e.statusCode === 404) return;
      // "removal of container x is already in progress"
      if (e.statusCode === 409 && /already in progress/.test(dockerMessage(e))) return;
      throw mapDockerError(err, `remove container ${id}`, this.socketPath);
    }
  }

  async inspectContainer(idOrName: string): Promise<ContainerInfo | undefined> {
    const i = await this.call404(`inspect container ${idOrName}`, (abortSignal) =>
      this.docker.getContainer(idOrName).inspect({ abortSignal } as object),
    );
    if (!i) return undefined;
    return {
      id: i.Id,
      name: stripSlash(i.Name),
      image: i.Config?.Image ?? '',
      imageId: i.Image,
      state: i.State?.Status ?? 'unknown',
      running: i.State?.Running ?? false,
      exitCode: i.State?.ExitCode ?? 0,
      error: i.State?.Error ?? '',
      oomKilled: i.State?.OOMKilled ?? false,
      pid: i.State?.Pid ?? 0,
      startedAt: i.State?.StartedAt ?? '',
      finishedAt: i.State?.FinishedAt ?? '',
      health: healthOf(i.State as { Health?: { Status?: string } }),
      labels: i.Config?.Labels ?? {},
    };
  }

  async listContainers(opts: { labels?: string[]; all?: boolean } = {}): Promise<ContainerSummary[]> {
    const filters = opts.labels && opts.labels.length > 0 ? { label: opts.labels } : {};
    const list = await this.call('list containers', (abortSignal) =>
      this.docker.listContainers({ all: opts.all ?? true, filters, abortSignal } as object),
    );
    return list.map((c) => ({
      id: c.Id,
      name: stripSlash(c.Names?.[0] ?? ''),
      image: c.Image,
      imageId: c.ImageID,
      state: c.State,
      status: c.Status,
      labels: c.Labels ?? {},
      created: c.Created,
    }));
  }

  async waitContainer(id: string): Promise<number> {
    try {
      const r = (await this.docker.getContainer(id).wait({ condition: 'not-running' })) as {
        StatusCode: number;
      };
      return r.StatusCode;
    } catch (err) {
      throw mapDockerError(err, `wait for container ${id}`, this.socketPath);
    }
  }

  async logs(id: string, opts: { tail: number }): Promise<LogLine[]> {
    const buf = await this.call(`logs of container ${id}`, (abortSignal) =>
      this.docker.getContainer(id).logs({
        stdout: true,
        stderr: true,
        follow: false,
        tail: opts.tail,
        abortSignal,
      } as Docker.ContainerLogsOptions & { follow: false }),
    );
    return demuxLogBuffer(Buffer.isBuffer(buf) ? buf : Buffer.from(String(buf)));
  }

  async followLogs(id: string, opts: FollowLogsOptions): Promise<LogFollower> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.getContainer(id).logs({
        stdout: true,
        stderr: true,
        follow: true,
        ...(opts.since !== undefined ? { since: opts.since } : {}),
        ...(opts.tail !== undefined ? { tail: opts.tail } : {}),
      });
    } catch (err) {
      throw mapDockerError(err, `follow logs of container ${id}`, this.socketPath);
    }
    const passthrough = (w: NodeJS.WritableStream): Writable =>
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          w.write(chunk);
          cb();
        },
      });
    this.docker.modem.demuxStream(stream, passthrough(opts.stdout), passthrough(opts.stderr));
    const handle = {
      close: () => (stream as unknown as { destroy?: () => void }).destroy?.(),
    };
    this.streams.add(handle);
    const done = new Promise<void>((resolve) => {
      const finish = (): void => {
        this.streams.delete(handle);
        resolve();
      };
      stream.on('end', finish);
      stream.on('close', finish);
      stream.on('error', finish);
    });
    return { done, close: handle.close };
  }

  events(opts: EventsOptions): EventStream {
    const handle = followEvents(
      opts,
      (filters) => this.docker.getEvents({ filters }),
      (err) =>
        err
          ? mapDockerError(err, 'events', this.socketPath)
          : new FlotillaError('E_DOCKER_UNAVAILABLE', 'docker unavailable: the events stream ended', {
              socket: this.socketPath,
            }),
      () => this.streams.delete(handle),
    );
    this.streams.add(handle);
    return handle;
  }

  close(): void {
    for (const s of [...this.streams]) s.close();
    this.streams.clear();
  }
}
