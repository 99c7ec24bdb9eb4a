/**
 * An in-memory DockerPort for the pure logic of the agent's container-unit hooks (pull decisions,
 * bounded failures, Docker going away). The real engine has its own tests against real dockerd
 * (test/integration/docker-*.test.ts).
 */
/* eslint-disable @typescript-eslint/require-await -- the port is async; the fake answers at once */
import { FlotillaError } from '../../../src/lib/errors.js';
import type {
  ContainerCreateSpec,
  ContainerEvent,
  ContainerInfo,
  ContainerSummary,
  DockerPort,
  EventsOptions,
  EventStream,
  ImageInfo,
  LogFollower,
  LogLine,
  PullProgress,
} from '../../../src/docker/port.js';

export class FakeDocker implements DockerPort {
  available = true;
  images = new Set<string>();
  /** image → error message for pulls that fail. */
  pullFailures = new Map<string, string>();
  /** Resolvers of pulls that were asked to wait (`holdPulls`). */
  holdPulls = false;
  held: (() => void)[] = [];
  pulls: string[] = [];
  inspects = 0;
  private streams = new Set<EventsOptions>();

  private check(): void {
    if (!this.available)
      throw new FlotillaError(
        'E_DOCKER_UNAVAILABLE',
        'docker unavailable: /var/run/docker.sock refused the connection',
      );
  }

  async ping(): Promise<void> {
    this.check();
  }
  async inspectImage(ref: string): Promise<ImageInfo | undefined> {
    this.check();
    this.inspects++;
    return this.images.has(ref)
      ? { id: `sha256:${ref}`, repoTags: [ref], repoDigests: [], size: 1, created: 0, labels: {} }
      : undefined;
  }
  async pullImage(ref: string, onProgress?: (p: PullProgress) => void): Promise<void> {
    this.check();
    this.pulls.push(ref);
    onProgress?.({ id: 'l1', status: 'Downloading', current: 50, total: 100 });
    if (this.holdPulls) await new Promise<void>((r) => this.held.push(r));
    this.check();
    const fail = this.pullFailures.get(ref);
    if (fail) throw new FlotillaError('E_IMAGE_PULL', `image pull failed: ${ref}: ${fail}`);
    onProgress?.({ id: 'l1', status: 'Pull complete' });
    this.images.add(ref);
  }
  async listImages(): Promise<ImageInfo[]> {
    return [];
  }
  async removeImage(): Promise<void> {}
  async createContainer(_spec: ContainerCreateSpec): Promise<string> {
    this.check();
    return 'c'.repeat(64);
  }
  async startContainer(): Promise<void> {}
  async stopContainer(): Promise<void> {}
  async killContainer(): Promise<void> {}
  async removeContainer(): Promise<void> {}
  async inspectContainer(): Promise<ContainerInfo | undefined> {
    this.check();
    return undefined;
  }
  async listContainers(): Promise<ContainerSummary[]> {
    this.check();
    return [];
  }
  async waitContainer(): Promise<number> {
    return 0;
  }
  async logs(): Promise<LogLine[]> {
    return [];
  }
  async followLogs(): Promise<LogFollower> {
    return { done: Promise.resolve(), close: () => undefined };
  }
  events(opts: EventsOptions): EventStream {
    this.streams.add(opts);
    if (this.available) queueMicrotask(() => opts.onConnected?.(false));
    return {
      connected: this.available,
      close: () => this.streams.delete(opts),
    };
  }
  /** Docker stops: streams report the loss. */
  goAway(): void {
    this.available = false;
    for (const s of this.streams)
      s.onDisconnected?.(new Error('docker unavailable: the events stream ended'));
  }
  /** Docker is back: streams reconnect. */
  comeBack(): void {
    this.available = true;
    for (const s of this.streams) s.onConnected?.(true);
  }
  emit(ev: ContainerEvent): void {
    for (const s of this.streams) s.onEvent(ev);
  }
  close(): void {}
}
