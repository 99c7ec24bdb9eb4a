/**
 * The registrar's ContainerSource over the Docker port (src/docker/port.ts): containers that carry
 * `flotilla.service`, inspected for their state and health, and the port's self-reconnecting event
 * stream filtered to those containers. Each (re)connect of the stream is passed on as a synthetic
 * `start` event, so the registrar reconciles whatever it may have missed.
 */
import { AsyncQueue } from '../lib/queue.js';
import type { ContainerEvent, ContainerSource } from './registrar.js';
import type { ServiceContainer } from './plan.js';
import type { DockerPort } from '../docker/port.js';
import { SERVICE_LABEL } from './services.js';

export class DockerContainerSource implements ContainerSource {
  constructor(private readonly docker: DockerPort) {}

  async serviceContainers(): Promise<ServiceContainer[]> {
    // Running (and paused) containers only: a stopped one has nothing to register.
    const list = await this.docker.listContainers({ labels: [SERVICE_LABEL], all: false });
    const out = await Promise.all(
      list.map(async (c): Promise<ServiceContainer | undefined> => {
        const i = await this.docker.inspectContainer(c.id);
        if (!i) return undefined; // removed since the list
        const sc: ServiceContainer = {
          id: i.id,
          name: i.name,
          labels: i.labels,
          running: i.running && i.state !== 'paused',
          paused: i.state === 'paused',
        };
        if (i.health !== 'none') sc.health = i.health;
        return sc;
      }),
    );
    return out.filter((c): c is ServiceContainer => c !== undefined);
  }

  events(): AsyncIterable<ContainerEvent> & { close(): void } {
    const holder: { stream?: { close(): void } } = {};
    const q = new AsyncQueue<ContainerEvent>(() => holder.stream?.close());
    const stream = this.docker.events({
      labels: [SERVICE_LABEL],
      onEvent: (ev) => {
        const action = ev.kind === 'health_status' ? `health_status: ${ev.health ?? 'none'}` : ev.kind;
        q.push({ id: ev.id, action, labels: ev.labels });
      },
      // Connected (first time or again): whatever happened before is only seen by a full look.
      onConnected: () => q.push({ id: '', action: 'start' }),
    });
    holder.stream = stream;
    return Object.assign(q, {
      close: () => {
        stream.close();
        q.end();
      },
    });
  }
}
