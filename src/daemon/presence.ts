/**
 * This machine's presence in the cluster: the lease (resumed from <data_dir>/agent.lease while it
 * is alive, so a restarted agent, also after kill -9, keeps its own lease instead of colliding
 * with itself; else granted anew, retried with backoff while the registry is unreachable), the
 * machine record bound to it (registered again when the lease was lost and regranted), the
 * duplicate-machine-ID refusal, and the two guards that keep it honest: self-fencing and peer
 * liveness probing (src/agent/fence.ts, liveness.ts).
 */
import { systemClock, type Clock } from '../lib/clock.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FenceMonitor } from '../agent/fence.js';
import type { OwnMetadata } from '../api/machine-metadata.js';
import { isCode } from '../lib/errors.js';
import { writeAtomic } from '../lib/fs.js';
import type { Logger } from '../lib/log.js';
import type { ClusterView } from '../registry/cluster-view.js';
import type { KvStore } from '../registry/kv.js';
import { LeaseKeeper } from '../registry/lease.js';
import type { Registry } from '../registry/registry.js';
import type { MachineRecord } from '../registry/types.js';
import { LivenessMonitor, serveLiveness } from '../agent/liveness.js';
import { agentTiming, type AgentTiming, type TimingConfig } from './timing.js';
import { Backoff, sleep } from '../lib/backoff.js';

export interface PresenceDeps {
  store: KvStore;
  registry: Registry;
  /** The record to publish; `metadata` is kept up to date from `ownMetadata`. */
  machine: MachineRecord;
  dataDir: string;
  /** agent_ttl and friends (timing.ts). */
  timingConfig: TimingConfig;
  /** The liveness responder's port (clusters only; 0: none). */
  livenessPort: number;
  ownMetadata: OwnMetadata;
  log: Logger;
  /** The lease keeper's clock, also read by fencing and liveness (default: the system clock). */
  clock?: Clock;
}

export class Presence {
  readonly lease: LeaseKeeper;
  readonly clock: Clock;
  private readonly leaseFile: string;
  private livenessServer: Awaited<ReturnType<typeof serveLiveness>> | undefined;
  /** Called after the record was registered again on a regranted lease (the agent republishes). */
  onReregistered: () => Promise<void> = () => Promise.resolve();

  constructor(private readonly d: PresenceDeps) {
    this.clock = d.clock ?? systemClock;
    this.lease = new LeaseKeeper(d.store, agentTiming(d.timingConfig, false).leaseTtlS, this.clock);
    this.leaseFile = join(d.dataDir, 'agent.lease');
  }

  /** Resume our own lease if it is still alive, else grant a new one; retries until it has one. */
  async acquire(): Promise<void> {
    const { store, log } = this.d;
    let resumed: string | undefined;
    try {
      const old = readFileSync(this.leaseFile, 'utf8').trim();
      if (old) {
        await store.keepAliveOnce(old);
        resumed = old;
      }
    } catch {
      /* none, or expired */
    }
    const backoff = new Backoff(250, 5000);
    for (let attempt = 0; ; attempt++) {
      try {
        if (resumed) this.lease.adopt(resumed);
        else await this.lease.start();
        break;
      } catch (err) {
        if (attempt % 10 === 0) log.warn({ err: (err as Error).message }, 'registry unreachable; retrying');
        await sleep(backoff.next());
      }
    }
    // Liveness responder (clusters only): peers probe it to notice a dead machine before its lease
    // expires (see liveness.ts). Registered in the machine record only if it is really listening.
    const { machine, livenessPort } = this.d;
    if (store.backend === 'etcd' && livenessPort > 0) {
      try {
        this.livenessServer = await serveLiveness(machine.id, machine.publicIP, livenessPort);
        machine.livenessPort = livenessPort;
      } catch (err) {
        log.warn(
          { port: livenessPort, err: (err as Error).message },
          'liveness responder not started: this machine fails over by its lease only',
        );
      }
    }
  }

  /** The timings, once `acquire` knows whether peers can probe this machine. */
  get timing(): AgentTiming {
    return agentTiming(this.d.timingConfig, this.d.machine.livenessPort !== undefined);
  }

  /** Close the liveness responder (the lease is the daemon's to keep or revoke). */
  closeResponder(): void {
    this.livenessServer?.close();
  }

  /** Write the machine record on the lease (and remember the lease for the next start). */
  async register(): Promise<void> {
    const id = this.lease.id;
    if (id === undefined) return;
    writeAtomic(this.leaseFile, id);
    await this.d.registry.registerMachine(this.d.machine, id);
  }

  /**
   * The first registration. A machine ID another live agent holds (a duplicate /etc/machine-id)
   * is refused: the other side is told (it logs the collision), our lease goes, and this throws.
   */
  async join(): Promise<void> {
    const { store, machine, ownMetadata, log } = this.d;
    try {
      await ownMetadata.load().catch(() => undefined); // read again when the cluster view starts
      machine.metadata = ownMetadata.merged();
      await this.register();
    } catch (err) {
      if (isCode(err, 'E_CONFLICT')) {
        // Tell the other side too: it logs the collision.
        await store
          .put(`collision/${machine.id}`, JSON.stringify({ publicIP: machine.publicIP, at: Date.now() }), {
            lease: this.lease.id!,
          })
          .catch(() => undefined);
        log.error({ machineID: machine.id }, `${(err as Error).message}`);
        await this.lease.stop(true);
        await store.close();
        throw err;
      }
      throw err;
    }
    this.lease.on('granted', () => {
      log.warn({ lease: this.lease.id }, 'presence lease was lost; registered again with a new lease');
      void this.register()
        .then(() => this.onReregistered())
        .catch((e: Error) => log.error({ err: e.message }, 'could not register again'));
    });
    this.lease.on('error', (e) => log.warn({ err: e.message }, 'lease renewal failed'));
  }

  /**
   * Follow the cluster view: dynamic metadata changes (PATCH /fleet/v1/machines) are published
   * again, and another agent refused for holding our machine ID is named in the log.
   */
  follow(view: ClusterView): void {
    const { machine, ownMetadata, log } = this.d;
    view.on('collision', (id, ip) => {
      if (id !== machine.id) return;
      log.error(
        { machineID: id, otherIP: ip },
        `another agent at ${ip} tried to join with this machine's ID ${id}; it was refused (duplicate /etc/machine-id)`,
      );
    });
    view.on('batch', (_rev, events) => {
      if (ownMetadata.apply(events)) this.republishMetadata();
    });
    view.on('resync', () => {
      void ownMetadata.load().then(
        (changed) => changed && this.republishMetadata(),
        () => undefined,
      );
    });
  }

  /** Publish the merged metadata (configured + dynamic) again. */
  republishMetadata(): void {
    this.d.machine.metadata = this.d.ownMetadata.merged();
    void this.register().catch((e: Error) =>
      this.d.log.error({ err: e.message }, 'could not update machine record'),
    );
  }
}

export interface GuardDeps {
  presence: Presence;
  registry: Registry;
  machine: MachineRecord;
  /** The registry endpoints (etcd) the fence probes, and this machine's own addresses. */
  endpoints: string[];
  ownAddresses: Set<string>;
  setFenced: (on: boolean) => void;
  /** Peer probing runs only against etcd (a cluster); undefined for the embedded registry. */
  liveness?: {
    machines: () => Iterable<MachineRecord>;
    leader: () => string | undefined;
    isLeader: () => boolean;
  };
  log: Logger;
}

/**
 * Start self-fencing and (clusters only) the liveness monitor; returns their stop. With liveness
 * probing, peers revoke a silent machine after livenessTimeout: a machine cut off from everything
 * must fence itself before that, not after agent_ttl (timing.ts).
 */
export function startGuards(d: GuardDeps): { stop(): void } {
  const lease = d.presence.lease;
  const timing = d.presence.timing;
  const fence = new FenceMonitor({
    ttlMs: timing.fenceTtlMs,
    lastRenewed: () => lease.lastRenewed,
    clock: d.presence.clock,
    endpoints: d.endpoints,
    ownAddresses: d.ownAddresses,
    peers: () =>
      [...(d.liveness?.machines() ?? [])]
        .filter((m) => m.id !== d.machine.id && m.livenessPort)
        .map((m) => ({ host: m.publicIP, port: m.livenessPort! })),
    setFenced: d.setFenced,
  });
  fence.start();
  const l = d.liveness;
  const liveness = l
    ? new LivenessMonitor({
        machineID: d.machine.id,
        machines: l.machines,
        leader: l.leader,
        isLeader: l.isLeader,
        lastRenewed: () => lease.lastRenewed,
        clock: d.presence.clock,
        evict: (victim) => {
          const mine = lease.id;
          return mine === undefined
            ? Promise.resolve(false)
            : d.registry.evictMachine(victim, { id: d.machine.id, lease: mine });
        },
        log: d.log,
        timeoutMs: timing.livenessTimeoutMs,
        intervalMs: timing.livenessIntervalMs,
        ttlMs: timing.monitorTtlMs,
      })
    : undefined;
  liveness?.start();
  return {
    stop: () => {
      fence.stop();
      liveness?.stop();
    },
  };
}
