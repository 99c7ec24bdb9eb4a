/**
 * ServiceRegistrar: registers this machine's service containers in the registry and keeps the
 * registration true, driven by Docker events.
 *
 *   - A reconcile reads the containers that carry `flotilla.service` (ContainerSource) and this
 *     machine's registered endpoints, plans (plan.ts) and applies the difference in one txn
 *     per 100 keys. Every endpoint is put with the machine's presence lease, so a machine that
 *     disappears takes its endpoints with it.
 *   - Docker events (start, die, stop, kill, destroy, pause, unpause, health_status, …) trigger a
 *     reconcile; triggers coalesce (SerialRunner). When the event stream breaks, it is re-subscribed
 *     with backoff and a reconcile follows, so nothing missed meanwhile stays wrong.
 *   - A new presence lease (the old one expired) triggers a reconcile: it re-puts every endpoint.
 *   - A reconcile that fails changes nothing. Docker unreachable (E_DOCKER_UNAVAILABLE): logged once,
 *     and the event stream's reconnect triggers the next reconcile. Anything else (the registry
 *     unreachable): retried with backoff (500 ms doubling to 10 s). A periodic resync is a safety net.
 *
 * Level-triggered: every pass reads Docker and the registry afresh (never the events themselves),
 * and a pass that wrote is followed by one more, which confirms the result and picks up whatever
 * changed while it ran.
 *
 * INVARIANTS: one reconcile at a time; an endpoint is removed only after Docker was read
 * successfully and no longer shows it (Docker down never deregisters anything).
 */
import { isCode } from '../lib/errors.js';
import { SerialRunner } from '../lib/runner.js';
import type { Registry } from '../registry/registry.js';
import type { Logger } from '../lib/log.js';
import { planEndpoints, type ServiceContainer } from './plan.js';
import { endpointAddress } from './services.js';
import { Backoff, sleep } from '../lib/backoff.js';

/** A Docker event, reduced to what discovery needs. */
export interface ContainerEvent {
  id: string;
  /** Docker's action: `start`, `die`, `health_status: healthy`, … */
  action: string;
  labels?: Record<string, string>;
}

/** What the registrar needs from Docker (an adapter over the Docker port implements it). */
export interface ContainerSource {
  /** Every container that carries the service label (running or not), inspected. */
  serviceContainers(): Promise<ServiceContainer[]>;
  /**
   * Container events from now on. Iteration ends or throws when the stream breaks; the registrar
   * then subscribes again. `close()` ends it.
   */
  events(): AsyncIterable<ContainerEvent> & { close(): void };
}

/** The lease the endpoints hang on: the machine's presence lease (LeaseKeeper). */
export interface LeaseHolder {
  readonly id: string | undefined;
  on(event: 'granted', fn: (id: string) => void): unknown;
  off(event: 'granted', fn: (id: string) => void): unknown;
}

export interface RegistrarOptions {
  registry: Registry;
  source: ContainerSource;
  lease: LeaseHolder;
  machineID: string;
  /** The address other machines reach this machine's containers at (its public IP). */
  ip: string;
  log: Logger;
  /** Safety-net resync, ms (default 60 s). */
  resyncMs?: number;
}

/** Docker container actions that can change what is registered. */
const RELEVANT = new Set([
  'create',
  'start',
  'restart',
  'die',
  'kill',
  'stop',
  'oom',
  'destroy',
  'pause',
  'unpause',
  'rename',
  'update',
]);

export function isRelevantAction(action: string): boolean {
  return RELEVANT.has(action) || action.startsWith('health_status');
}

export class ServiceRegistrar {
  private readonly runner: SerialRunner;
  /** The current pass is the one that follows a pass that wrote. */
  private followUp = false;
  private stopped = false;
  private events: { close(): void } | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private dockerDown = false;
  private readonly warned = new Set<string>();
  private readonly onGranted = () => this.trigger();
  /** Resolves after the first successful reconcile. */
  readonly firstSync: Promise<void>;
  private resolveFirst!: () => void;
  reconciles = 0;
  registered = 0;

  constructor(private readonly o: RegistrarOptions) {
    this.firstSync = new Promise((r) => (this.resolveFirst = r));
    this.runner = new SerialRunner(
      () => this.reconcile(),
      (err) => this.failed(err),
    );
  }

  start(): void {
    this.o.lease.on('granted', this.onGranted);
    void this.follow();
    this.resyncTimer = setInterval(() => this.trigger(), this.o.resyncMs ?? 60_000);
    this.resyncTimer.unref();
    this.trigger();
  }

  trigger(): void {
    this.runner.trigger();
  }

  private failed(err: Error): void {
    if (isCode(err, 'E_DOCKER_UNAVAILABLE')) {
      // No timer: the event stream reconnects on its own and its reconnect triggers a reconcile.
      if (!this.dockerDown) {
        this.o.log.info({ err: err.message }, 'Docker is not reachable: service registration waits for it');
      }
      this.dockerDown = true;
      return;
    }
    this.failures++;
    const delay = Math.min(10_000, 500 * 2 ** Math.min(this.failures - 1, 5));
    if (this.failures === 1 || this.failures % 10 === 0) {
      this.o.log.warn({ err: err.message, retryMs: delay }, 'service registration failed; retrying');
    }
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.trigger(), delay);
    this.retryTimer.unref();
  }

  private async follow(): Promise<void> {
    const backoff = new Backoff(250, 5000);
    while (!this.stopped) {
      const stream = this.o.source.events();
      this.events = stream;
      // Whatever happened while we were not subscribed: look once the new stream is open.
      this.trigger();
      try {
        for await (const ev of stream) {
          backoff.reset();
          if (isRelevantAction(ev.action)) this.trigger();
        }
      } catch (err) {
        if (this.stopped) return;
        this.o.log.debug({ err: (err as Error).message }, 'docker event stream broke; subscribing again');
      }
      if (this.stopped) return;
      await sleep(backoff.next());
    }
  }

  private async reconcile(): Promise<void> {
    if (this.stopped) return;
    const lease = this.o.lease.id;
    if (lease === undefined) return; // re-granting: the 'granted' event triggers us again
    const containers = await this.o.source.serviceContainers();
    const { entries } = await this.o.registry.listEndpoints();
    const plan = planEndpoints({
      machineID: this.o.machineID,
      ip: this.o.ip,
      lease,
      containers,
      registered: entries,
      now: Date.now(),
    });
    for (const s of plan.skipped) {
      const key = `${s.container}\0${s.reason}`;
      if (this.warned.has(key)) continue;
      this.warned.add(key);
      if (this.warned.size > 10_000) this.warned.clear();
      this.o.log.warn({ container: s.container.slice(0, 12) }, `service not registered: ${s.reason}`);
    }
    const wrote = plan.put.length > 0 || plan.remove.length > 0;
    if (wrote) {
      await this.o.registry.applyEndpoints(lease, plan);
      for (const p of plan.put) {
        this.o.log.info(
          {
            service: p.service,
            endpoint: endpointAddress(p),
            container: p.container.slice(0, 12),
            health: p.health,
          },
          `service ${p.service}: registered ${endpointAddress(p)}`,
        );
      }
      for (const r of plan.remove) {
        this.o.log.info(
          { service: r.service, port: r.port },
          `service ${r.service}: deregistered ${this.o.ip}:${r.port}`,
        );
      }
    }
    this.registered = plan.desired;
    if (this.dockerDown) this.o.log.info({}, 'Docker is reachable again: service registration resumed');
    this.dockerDown = false;
    this.failures = 0;
    this.reconciles++;
    if (wrote && !this.followUp) {
      this.followUp = true;
      this.runner.rerun();
    } else this.followUp = false;
    this.resolveFirst();
  }

  /** Stop following Docker. With `deregister`, remove this machine's endpoints now. */
  async stop(deregister: boolean): Promise<void> {
    this.stopped = true;
    this.o.lease.off('granted', this.onGranted);
    clearTimeout(this.retryTimer);
    clearInterval(this.resyncTimer);
    this.events?.close();
    await this.runner.stop();
    if (deregister) {
      const { entries } = await this.o.registry.listEndpoints();
      const mine = entries.filter((e) => e.record.machineID === this.o.machineID);
      if (mine.length > 0) {
        await this.o.registry.applyEndpoints('0', {
          remove: mine.map((e) => ({
            service: e.record.service,
            machineID: this.o.machineID,
            port: e.record.port,
          })),
        });
      }
    }
  }

  dump(): Record<string, unknown> {
    return { reconciles: this.reconciles, registered: this.registered, failures: this.failures };
  }
}
