/**
 * The Docker side as container units see it: the events stream (filtered to this machine's
 * containers) and what it tells — whether Docker answers (`up`), how often it came back (`epoch`:
 * a docker failure from an earlier epoch may be retried), when it last went away and came back, and
 * each unit's container (name, image, id, state, health) from events, re-read in full after every
 * (re)connection because events while away are lost.
 */
import {
  LABEL_MACHINE,
  LABEL_UNIT,
  type ContainerEvent,
  type DockerPort,
  type EventStream,
} from '../docker/port.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { ContainerStateInfo } from '../registry/types.js';
import type { ContainerSpec } from './spec.js';

export interface DockerWatchDeps {
  docker: DockerPort;
  machineID: string;
  log: Logger;
  clock: Clock;
  /** The valid spec of a unit, if it is a container unit (events of other units are not published). */
  specOf(unit: string): ContainerSpec | undefined;
  /** Units with a valid spec (republished after a resync). */
  containerUnits(): string[];
  /** Docker came or went: plan again. */
  trigger(): void;
  /** A unit's container changed: publish its state soon. */
  publish(unit: string): void;
}

export class DockerWatch {
  /** True while the events stream is connected (Docker answers). */
  up = false;
  /** Counts Docker (re)connections. */
  epoch = 0;
  lastError = 'not connected yet';
  /** When the events stream last broke and last came back (ms by the clock). */
  lastDownAt = 0;
  lastUpAt = 0;
  /** unit → its container as last seen (events + resync). */
  readonly containers = new Map<string, ContainerStateInfo>();
  private events: EventStream | undefined;

  constructor(private readonly d: DockerWatchDeps) {}

  start(): void {
    this.events = this.d.docker.events({
      labels: [`${LABEL_MACHINE}=${this.d.machineID}`],
      onEvent: (ev) => this.onEvent(ev),
      onConnected: (reconnected) => {
        this.up = true;
        this.lastUpAt = this.d.clock.now();
        this.epoch++;
        this.d.log.info({ epoch: this.epoch }, reconnected ? 'docker is back' : 'docker connected');
        void this.resync().finally(() => this.d.trigger());
      },
      onDisconnected: (err) => {
        const was = this.up;
        this.up = false;
        this.lastError = err.message.replace(/^docker unavailable: /, '');
        if (was) {
          this.lastDownAt = this.d.clock.now();
          this.d.log.warn(
            { err: err.message },
            'docker went away: container units cannot start until it is back',
          );
          this.d.trigger();
        }
      },
    });
  }

  close(): void {
    this.events?.close();
  }

  private onEvent(ev: ContainerEvent): void {
    const unit = ev.labels[LABEL_UNIT];
    if (!unit || ev.labels[LABEL_MACHINE] !== this.d.machineID) return;
    const spec = this.d.specOf(unit);
    const prev = this.containers.get(unit);
    const info: ContainerStateInfo = {
      name: ev.name ?? prev?.name ?? spec?.name ?? '',
      image: ev.image ?? prev?.image ?? spec?.image ?? '',
      id: ev.id.slice(0, 12),
      state: prev?.state ?? 'created',
      health: prev?.id === ev.id.slice(0, 12) ? prev.health : 'none',
    };
    switch (ev.kind) {
      case 'create':
        info.state = 'created';
        info.health = 'none';
        break;
      case 'start':
        info.state = 'running';
        if (spec?.health) info.health = 'starting';
        break;
      case 'die':
        info.state = 'exited';
        if (ev.exitCode !== undefined) info.exitCode = ev.exitCode;
        break;
      case 'health_status':
        info.health = ev.health ?? 'none';
        break;
      case 'destroy':
        if (prev?.id !== ev.id.slice(0, 12)) return; // an older container of the unit
        info.state = 'absent';
        delete info.id;
        info.health = 'none';
        break;
      case 'kill':
      case 'stop':
      case 'oom':
        return;
    }
    // Events of a replaced container (stale removal) must not overwrite the new one.
    if (
      prev?.id &&
      prev.id !== info.id &&
      ev.kind !== 'create' &&
      ev.kind !== 'start' &&
      prev.state === 'running'
    )
      return;
    this.containers.set(unit, info);
    if (spec) this.d.publish(unit);
  }

  /** Read our containers after (re)connecting: events while away are lost. */
  private async resync(): Promise<void> {
    try {
      const list = await this.d.docker.listContainers({
        labels: [`${LABEL_MACHINE}=${this.d.machineID}`],
        all: true,
      });
      const byUnit = new Map<string, (typeof list)[number]>();
      for (const c of list) {
        const unit = c.labels[LABEL_UNIT];
        if (!unit) continue;
        const prev = byUnit.get(unit);
        // The newest container of a unit is its current one.
        if (!prev || c.created > prev.created) byUnit.set(unit, c);
      }
      this.containers.clear();
      for (const [unit, c] of byUnit) {
        const inspected = await this.d.docker.inspectContainer(c.id).catch(() => undefined);
        const info: ContainerStateInfo = {
          name: c.name,
          image: c.image,
          id: c.id.slice(0, 12),
          state: inspected?.state ?? c.state,
          health: inspected?.health ?? 'none',
        };
        if (inspected && !inspected.running) info.exitCode = inspected.exitCode;
        this.containers.set(unit, info);
      }
      for (const unit of this.d.containerUnits()) this.d.publish(unit);
    } catch (err) {
      this.d.log.debug({ err: (err as Error).message }, 'docker resync failed');
    }
  }
}
