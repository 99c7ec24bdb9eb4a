/**
 * The one port to Docker. Everything in flotilla that talks to dockerd goes through `DockerPort`;
 * `DockerodeEngine` (`./dockerode.ts`) is the real implementation over the engine's unix socket.
 *
 * Failure model: every call that cannot reach dockerd rejects with E_DOCKER_UNAVAILABLE (message
 * `docker unavailable: <cause>`); a call that dockerd answers with an error rejects with E_DOCKER_CALL
 * (carrying the HTTP status in `details.status`); "no such image/container" is not an error for the
 * inspect calls (they resolve `undefined`). The events stream never throws: it reports
 * connect/disconnect through callbacks and reconnects on its own with a bounded back-off.
 *
 * Labels are how flotilla recognises its own containers (`flotilla.unit`, `flotilla.machine`); see
 * `LABEL_*` below. Nothing here ever removes a container or image without the caller asking by id.
 */

/** Label keys set on every container flotilla creates. */
export const LABEL_UNIT = 'flotilla.unit';
export const LABEL_MACHINE = 'flotilla.machine';
/** The hash of the unit file the container was created from (diagnostics, adoption). */
export const LABEL_UNIT_HASH = 'flotilla.unit-hash';

export interface ImageInfo {
  id: string;
  /** `repo:tag` references that point at this image. */
  repoTags: string[];
  repoDigests: string[];
  /** Bytes. */
  size: number;
  /** Unix seconds. */
  created: number;
  labels: Record<string, string>;
}

/** One progress update of a pull, as dockerd reports it per layer. */
export interface PullProgress {
  /** Layer id, or undefined for whole-image lines ("Pulling from library/busybox"). */
  id?: string;
  /** "Downloading", "Extracting", "Pull complete", "Already exists", … */
  status: string;
  current?: number;
  total?: number;
}

export type HealthStatus = 'starting' | 'healthy' | 'unhealthy' | 'none';

export interface ContainerInfo {
  id: string;
  /** Without the leading slash. */
  name: string;
  image: string;
  imageId: string;
  /** created | running | paused | restarting | removing | exited | dead */
  state: string;
  running: boolean;
  exitCode: number;
  /** dockerd's error for a container that failed to start (e.g. "exec: not found"), else ''. */
  error: string;
  oomKilled: boolean;
  pid: number;
  /** ISO timestamps; '0001-01-01T00:00:00Z' when never. */
  startedAt: string;
  finishedAt: string;
  health: HealthStatus;
  labels: Record<string, string>;
}

export interface ContainerSummary {
  id: string;
  /** Without the leading slash. */
  name: string;
  image: string;
  imageId: string;
  state: string;
  status: string;
  labels: Record<string, string>;
  /** Unix seconds. */
  created: number;
}

/** What to create: the subset of Docker's create API flotilla's container units use. */
export interface ContainerCreateSpec {
  name: string;
  image: string;
  /** Command (argv, never a shell string); empty: the image's default. */
  cmd?: string[];
  entrypoint?: string[];
  env?: string[];
  labels?: Record<string, string>;
  user?: string;
  /** "host", "none", "bridge" or a network name. */
  network?: string;
  /** `src:dst[:opts]` binds (absolute src) or `volume:dst[:opts]` named volumes. */
  binds?: string[];
  /** Published ports: container port/proto → host bindings. */
  ports?: PortBinding[];
  /** Seconds dockerd waits after SIGTERM on `stop` (the container's own default). */
  stopTimeout?: number;
  stopSignal?: string;
  healthcheck?: {
    /** ["CMD-SHELL", "..."] or ["CMD", ...argv]. */
    test: string[];
    /** Nanoseconds, as Docker wants them. */
    intervalNs?: number;
    timeoutNs?: number;
    retries?: number;
    startPeriodNs?: number;
  };
  /** docker run --init */
  init?: boolean;
}

export interface PortBinding {
  containerPort: number;
  protocol: 'tcp' | 'udp';
  hostIp?: string;
  /** Undefined: dockerd picks one. */
  hostPort?: number;
}

export interface LogLine {
  stream: 'stdout' | 'stderr';
  text: string;
}

export interface FollowLogsOptions {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Unix seconds; only lines after this. */
  since?: number;
  /** Only the last N lines of the backlog (default all). */
  tail?: number;
}

export interface LogFollower {
  /** Resolves when the stream ends (the container stopped, or dockerd went away). */
  done: Promise<void>;
  close(): void;
}

export type ContainerEventKind =
  'create' | 'start' | 'die' | 'stop' | 'kill' | 'health_status' | 'destroy' | 'oom';

export interface ContainerEvent {
  kind: ContainerEventKind;
  id: string;
  /** Container name (without slash) when dockerd reports it. */
  name?: string;
  image?: string;
  labels: Record<string, string>;
  /** For `die`. */
  exitCode?: number;
  /** For `health_status`. */
  health?: HealthStatus;
  /** Unix nanoseconds. */
  timeNano: number;
}

export interface EventsOptions {
  onEvent(event: ContainerEvent): void;
  /**
   * The stream is (again) connected. `reconnected` is false the first time. Events while it was down
   * may be missed (dockerd may have restarted), so a consumer resyncs from `listContainers` here.
   */
  onConnected?(reconnected: boolean): void;
  /** The stream broke or could not connect; it retries on its own. */
  onDisconnected?(err: Error): void;
  /** Only events for containers carrying these labels (`key` or `key=value`). */
  labels?: string[];
  /** Reconnect back-off bounds in ms (default 250 → 5000). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export interface EventStream {
  /** True while the stream is connected. */
  readonly connected: boolean;
  close(): void;
}

export interface DockerPort {
  /** Resolves when dockerd answers; rejects E_DOCKER_UNAVAILABLE otherwise. */
  ping(): Promise<void>;
  /** undefined when the image is not present. */
  inspectImage(ref: string): Promise<ImageInfo | undefined>;
  /** Pull `ref` (a tag defaults to `latest`). Rejects E_IMAGE_PULL with dockerd's message. */
  pullImage(ref: string, onProgress?: (p: PullProgress) => void, signal?: AbortSignal): Promise<void>;
  listImages(): Promise<ImageInfo[]>;
  /** Remove by id or reference. `force` untags even when several tags point at it. */
  removeImage(ref: string, opts?: { force?: boolean }): Promise<void>;

  /** Returns the new container's id. */
  createContainer(spec: ContainerCreateSpec): Promise<string>;
  startContainer(id: string): Promise<void>;
  /** Graceful: SIGTERM (or the stop signal), then SIGKILL after `timeoutSec`. Already stopped is fine. */
  stopContainer(id: string, timeoutSec: number): Promise<void>;
  killContainer(id: string, signal?: string): Promise<void>;
  /** Already gone is fine. */
  removeContainer(id: string, opts?: { force?: boolean; volumes?: boolean }): Promise<void>;
  /** undefined when there is no such container. */
  inspectContainer(idOrName: string): Promise<ContainerInfo | undefined>;
  /** All containers (running or not) that carry every label (`key` or `key=value`). */
  listContainers(opts?: { labels?: string[]; all?: boolean }): Promise<ContainerSummary[]>;
  /** Resolves with the exit code once the container is not running. */
  waitContainer(id: string): Promise<number>;
  /** The last `tail` lines (both streams, in order). */
  logs(id: string, opts: { tail: number }): Promise<LogLine[]>;
  /** Stream the container's output (backlog per options, then live) into two writables. */
  followLogs(id: string, opts: FollowLogsOptions): Promise<LogFollower>;

  /** Container events with reconnect; never throws. */
  events(opts: EventsOptions): EventStream;

  close(): void;
}
