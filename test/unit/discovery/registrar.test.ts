/**
 * ServiceRegistrar's logic over a real embedded registry, with the container side faked behind the
 * ContainerSource interface (the real Docker path is test/integration/discovery-docker.test.ts).
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ServiceRegistrar,
  isRelevantAction,
  type ContainerEvent,
  type ContainerSource,
} from '../../../src/discovery/registrar.js';
import type { ServiceContainer } from '../../../src/discovery/plan.js';
import { FlotillaError } from '../../../src/lib/errors.js';
import { AsyncQueue } from '../../../src/lib/queue.js';
import { EmbeddedKvStore } from '../../../src/registry/embedded/index.js';
import { Registry } from '../../../src/registry/registry.js';
import { nullLogger } from '../../../src/lib/log.js';

class FakeDocker implements ContainerSource {
  containers: ServiceContainer[] = [];
  down = false;
  /** Throw E_DOCKER_UNAVAILABLE (dockerd not reachable) instead of a plain error. */
  unreachable = false;
  lists = 0;
  streams: AsyncQueue<ContainerEvent>[] = [];
  async serviceContainers(): Promise<ServiceContainer[]> {
    this.lists++;
    await Promise.resolve();
    if (this.unreachable) throw new FlotillaError('E_DOCKER_UNAVAILABLE', 'docker unavailable: ENOENT');
    if (this.down) throw new Error('docker is down');
    return this.containers.map((c) => ({ ...c }));
  }
  events(): AsyncIterable<ContainerEvent> & { close(): void } {
    const q = new AsyncQueue<ContainerEvent>();
    this.streams.push(q);
    return Object.assign(q, { close: () => q.end() });
  }
  get stream(): AsyncQueue<ContainerEvent> {
    return this.streams[this.streams.length - 1]!;
  }
}

class FakeLease extends EventEmitter<{ granted: [string] }> {
  constructor(public id: string | undefined) {
    super();
  }
}

const db = (over: Partial<ServiceContainer> = {}): ServiceContainer => ({
  id: 'c1',
  name: 'db',
  labels: { 'flotilla.service': 'database:5432' },
  running: true,
  ...over,
});

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`condition not met in ${ms} ms; last value ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let dir: string;
let store: EmbeddedKvStore;
let registry: Registry;
let docker: FakeDocker;
let lease: FakeLease;
let reg: ServiceRegistrar;

const endpoints = async () => (await registry.listEndpoints()).entries;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'flotilla-registrar-'));
  store = await EmbeddedKvStore.open({ dataDir: dir });
  registry = new Registry(store);
  docker = new FakeDocker();
  lease = new FakeLease((await store.grantLease(60)).id);
  reg = new ServiceRegistrar({
    registry,
    source: docker,
    lease,
    machineID: 'm1',
    ip: '10.214.0.11',
    log: nullLogger,
  });
});
afterEach(async () => {
  await reg.stop(false);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('ServiceRegistrar', () => {
  it('registers on start, on the machine lease, and follows start/die events', async () => {
    docker.containers = [db()];
    reg.start();
    await reg.firstSync;
    const [e] = await endpoints();
    expect(e).toMatchObject({
      key: 'services/database/m1:5432',
      lease: lease.id,
      record: { ip: '10.214.0.11', port: 5432 },
    });

    docker.containers = [db({ running: false })];
    docker.stream.push({ id: 'c1', action: 'die' });
    await until(endpoints, (l) => l.length === 0);

    docker.containers = [db({ id: 'c2' })];
    docker.stream.push({ id: 'c2', action: 'start' });
    const [e2] = await until(endpoints, (l) => l.length === 1);
    expect(e2!.record.container).toBe('c2');
  });

  it('follows health: starting is listed, unhealthy is removed, healthy comes back', async () => {
    docker.containers = [db({ health: 'starting' })];
    reg.start();
    await reg.firstSync;
    expect((await endpoints())[0]!.record.health).toBe('starting');
    docker.containers = [db({ health: 'healthy' })];
    docker.stream.push({ id: 'c1', action: 'health_status: healthy' });
    await until(endpoints, (l) => l[0]?.record.health === 'healthy');
    docker.containers = [db({ health: 'unhealthy' })];
    docker.stream.push({ id: 'c1', action: 'health_status: unhealthy' });
    await until(endpoints, (l) => l.length === 0);
  });

  it('re-puts its endpoints on a new lease when the old one was lost', async () => {
    docker.containers = [db()];
    reg.start();
    await reg.firstSync;
    await store.revokeLease(lease.id!);
    expect(await endpoints()).toEqual([]);
    lease.id = (await store.grantLease(60)).id;
    lease.emit('granted', lease.id);
    const [e] = await until(endpoints, (l) => l.length === 1);
    expect(e!.lease).toBe(lease.id);
  });

  it('removes nothing while Docker cannot be read, and catches up when it can', async () => {
    docker.containers = [db()];
    reg.start();
    await reg.firstSync;
    docker.down = true;
    docker.containers = [];
    const lists = docker.lists;
    docker.stream.push({ id: 'c1', action: 'die' });
    await until(
      () => Promise.resolve(docker.lists),
      (n) => n >= lists + 2,
    ); // the event's run and a retry
    expect(await endpoints()).toHaveLength(1);
    docker.down = false;
    await until(endpoints, (l) => l.length === 0);
  });

  it('waits for Docker to come back (no retry timer) and reconciles when its events reconnect', async () => {
    docker.containers = [db()];
    reg.start();
    await reg.firstSync;
    docker.unreachable = true;
    docker.containers = [];
    const lists = docker.lists;
    docker.stream.push({ id: 'c1', action: 'die' });
    await until(
      () => Promise.resolve(docker.lists),
      (n) => n === lists + 1,
    );
    await new Promise((r) => setTimeout(r, 1200)); // a retry timer would have run by now
    expect(docker.lists).toBe(lists + 1);
    expect(await endpoints()).toHaveLength(1);
    docker.unreachable = false;
    docker.stream.push({ id: '', action: 'start' }); // what the Docker source sends on reconnect
    await until(endpoints, (l) => l.length === 0);
  });

  it('subscribes again when the event stream breaks, and reconciles what it missed', async () => {
    docker.containers = [db()];
    reg.start();
    await reg.firstSync;
    docker.containers = [];
    docker.stream.fail(new Error('stream broke'));
    await until(
      () => Promise.resolve(docker.streams.length),
      (n) => n === 2,
    );
    await until(endpoints, (l) => l.length === 0);
  });

  it('leaves other machines alone and cleans up its own stale endpoints at start', async () => {
    await registry.applyEndpoints(lease.id!, {
      put: [
        {
          service: 'database',
          machineID: 'm1',
          ip: '10.214.0.11',
          port: 9999,
          container: 'gone',
          health: 'none',
          registered: 1,
        },
        {
          service: 'database',
          machineID: 'm2',
          ip: '10.214.0.12',
          port: 5432,
          container: 'x',
          health: 'none',
          registered: 1,
        },
      ],
    });
    docker.containers = [db()];
    reg.start();
    await reg.firstSync;
    expect((await endpoints()).map((e) => e.key)).toEqual([
      'services/database/m1:5432',
      'services/database/m2:5432',
    ]);
  });

  it('ignores events that cannot change registration', () => {
    for (const a of ['start', 'die', 'destroy', 'pause', 'health_status: healthy'])
      expect(isRelevantAction(a)).toBe(true);
    for (const a of ['exec_start: sh', 'attach', 'top', 'resize', 'copy'])
      expect(isRelevantAction(a)).toBe(false);
  });
});
