/**
 * An in-memory DockerPort beside the port it fakes, for the pure logic of the agent's container-unit
 * hooks (pull decisions, bounded failures, Docker going away) and for scale simulation. It holds
 * images and an empty container world; what it does not model (creating, starting, stopping,
 * removing or waiting for containers, logs, image removal) throws `Fake method not implemented`,
 * never silently succeeds. The DockerPort contract (test/support/docker-contract.ts) runs against
 * this fake and against the real engine, so the two cannot drift.
 */
/* eslint-disable @typescript-eslint/require-await -- the port is async; the fake answers at once */
import { FlotillaError } from '../lib/errors.js';
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
} from './port.js';

function notImplemented(method: string): never {
  throw new Error(`Fake method not implemented: FakeDocker.${method}()`);
}

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
    return this.images.has(ref) ? this.info(ref) : undefined;
  }
  private info(ref: string): ImageInfo {
    return { id: `sha256:${ref}`, repoTags: [ref], repoDigests: [], size: 1, created: 0, labels: {} };
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
    this.check();
    return [...this.images].map((ref) => this.info(ref));
  }
  async removeImage(): Promise<void> {
    notImplemented('removeImage');
  }
  async createContainer(_spec: ContainerCreateSpec): Promise<string> {
    notImplemented('createContainer');
  }
  async startContainer(): Promise<void> {
    notImplemented('startContainer');
  }
  async stopContainer(): Promise<void> {
    notImplemented('stopContainer');
  }
  async killContainer(): Promise<void> {
    notImplemented('killContainer');
  }
  async removeContainer(): Promise<void> {
    notImplemented('removeContainer');
  }
  async inspectContainer(): Promise<ContainerInfo | undefined> {
    this.check();
    return undefined;
  }
  async listContainers(): Promise<ContainerSummary[]> {
    this.check();
    return [];
  }
  async waitContainer(): Promise<number> {
    notImplemented('waitContainer');
  }
  async logs(): Promise<LogLine[]> {
    notImplemented('logs');
  }
  async followLogs(): Promise<LogFollower> {
    notImplemented('followLogs');
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
