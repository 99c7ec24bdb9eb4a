/**
 * Fast machine-loss detection: failover that does not wait for a lease to expire.
 *
 * A presence lease alone makes failover take agent_ttl after the last renewal, plus etcd's lessor
 * tick, plus a full extra TTL whenever the dead machine hosted etcd's raft leader (a new raft leader
 * gives every lease its whole TTL again). So machines also watch each other directly:
 *
 *   - every agent serves a tiny TCP responder on public_ip:liveness_port that writes
 *     `FLV1 <machineID>\n` and closes;
 *   - the engine leader probes every other machine, and every other agent probes the engine
 *     leader's machine (2N probes per interval in all, not N²), every `interval`;
 *   - a machine is *silent* when its connects time out or its network is unreachable. A refused
 *     connect (RST) proves the machine is up and only the agent is not (a restart, a crash loop):
 *     that is left to the lease, so restarting an agent never moves its units;
 *   - a machine silent for `timeout` (default 2/3 of agent_ttl) is evicted (Registry.evictMachine:
 *     its machine key deleted in a txn guarded by the prober's own registration, then its lease
 *     revoked), so its units are rescheduled at once, through the same path as an expired lease.
 *     The guard matters: a cut-off prober's request can sit in a TCP buffer and reach etcd after
 *     the heal; by then the prober's own lease is gone and the txn does nothing.
 *
 * Safety rules, so a confused prober cannot empty a cluster:
 *   - a target is only "armed" once it has answered since its current registration: a machine
 *     whose responder is unreachable from here (firewall, liveness disabled) is never revoked by
 *     probing, only by its lease;
 *   - the prober's own lease must be confirmed within agent_ttl (and a revocation needs an etcd
 *     quorum, which a cut-off prober cannot reach anyway);
 *   - when more targets are silent at once than a minority of the cluster, nothing is revoked:
 *     the prober is more likely the one cut off.
 * A machine revoked by mistake (a one-way partition) re-registers at once with a new lease; its
 * units have moved and its agent stops the stale copies when it sees the new schedule.
 *
 * `LivenessTracker` is the pure decision part; `LivenessMonitor` probes and revokes.
 */
import { systemClock, type TimeSource } from '../lib/clock.js';
import { connect, createServer, type Server } from 'node:net';
import type { MachineRecord } from '../registry/types.js';
import type { Logger } from '../lib/log.js';

export type ProbeResult = 'ok' | 'refused' | 'silent';

export interface LivenessTarget {
  id: string;
  /** The presence lease the target is registered under (revoking it removes the machine). */
  lease: string;
  ip: string;
  port: number;
}

export interface Revocation {
  id: string;
  lease: string;
  reason: string;
}

interface TargetState {
  lease: string;
  armed: boolean;
  /** Last time the machine proved to be up (an answer or a refused connect), ms. */
  lastSeen: number;
  revoked: boolean;
}

/** Pure: which machines to revoke, given probe results over time. */
export class LivenessTracker {
  private readonly targets = new Map<string, TargetState>();

  constructor(private readonly timeoutMs: number) {}

  /** The current probe targets; a new target, or a new lease for one, starts unarmed. */
  setTargets(targets: readonly LivenessTarget[], now: number): void {
    const keep = new Set<string>();
    for (const t of targets) {
      keep.add(t.id);
      const s = this.targets.get(t.id);
      if (!s || s.lease !== t.lease)
        this.targets.set(t.id, { lease: t.lease, armed: false, lastSeen: now, revoked: false });
    }
    for (const id of this.targets.keys()) if (!keep.has(id)) this.targets.delete(id);
  }

  /** Record one probe's result. */
  observe(id: string, result: ProbeResult, now: number): void {
    const s = this.targets.get(id);
    if (!s || result === 'silent') return;
    s.lastSeen = now;
    if (result === 'ok') s.armed = true;
  }

  /**
   * The machines to revoke now. `clusterSize` counts every registered machine including the
   * prober; at most a minority of it (⌊(size − 1) / 2⌋, at least 1) may be silent for any to go.
   */
  due(now: number, clusterSize: number): Revocation[] {
    const silent: [string, TargetState][] = [];
    for (const [id, s] of this.targets) {
      if (!s.revoked && s.armed && now - s.lastSeen > this.timeoutMs) silent.push([id, s]);
    }
    const allowed = Math.max(1, Math.floor((clusterSize - 1) / 2));
    if (silent.length === 0 || silent.length > allowed) return [];
    return silent.map(([id, s]) => {
      s.revoked = true;
      return {
        id,
        lease: s.lease,
        reason: `no answer from machine ${id} for ${((now - s.lastSeen) / 1000).toFixed(1)} s`,
      };
    });
  }

  /** A revocation did not happen (registry down): judge the machine again at the next probe. */
  retry(id: string): void {
    const s = this.targets.get(id);
    if (s) s.revoked = false;
  }

  /** Silent machines over the minority limit: the prober should suspect itself (for logs). */
  silentCount(now: number): number {
    let n = 0;
    for (const s of this.targets.values())
      if (s.armed && !s.revoked && now - s.lastSeen > this.timeoutMs) n++;
    return n;
  }
}

const MAGIC = 'FLV1';

/** Probe one machine: did its responder answer (ok), its host refuse (refused), or nothing (silent)? */
export function probeMachine(
  ip: string,
  port: number,
  machineID: string,
  timeoutMs: number,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const sock = connect({ host: ip, port });
    let buf = '';
    let connected = false;
    const done = (r: ProbeResult) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done(connected ? 'refused' : 'silent'), timeoutMs);
    sock.setEncoding('utf8');
    sock.once('connect', () => (connected = true));
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.length > 256) done('refused');
      else if (buf.includes('\n')) done(buf.trim() === `${MAGIC} ${machineID}` ? 'ok' : 'refused');
    });
    // A connected socket closed without the right line: some other process owns the port; the
    // host is up, so this never counts as silence, and it never arms the target either.
    sock.once('end', () => done('refused'));
    sock.once('error', (err: NodeJS.ErrnoException) => {
      // RST: the host is there. Unreachable / timed out: treat as silence.
      done(err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET' || connected ? 'refused' : 'silent');
    });
  });
}

/** Bounds on the responder, so clients that never close cannot hold it (defaults in comments). */
export interface LivenessServeLimits {
  /** Connections open at once; past it a connect is closed without an answer (256). */
  maxConnections?: number;
  /**
   * A connection idle this long is destroyed, whether or not the client has read the line or
   * closed its side (2000 ms). The line is written at accept, so this is the time since then. A probe reads its line within ms; without this, a
   * client that never sends FIN holds its slot for ever, and 256 of them (any local user, or
   * anyone who can reach public_ip) make every peer's probe look like a refused agent.
   */
  idleTimeoutMs?: number;
}

/** The responder: answers every connect with this machine's ID. */
export function serveLiveness(
  machineID: string,
  host: string,
  port: number,
  limits: LivenessServeLimits = {},
): Promise<Server> {
  const idleMs = limits.idleTimeoutMs ?? 2000;
  const server = createServer((sock) => {
    sock.on('error', () => undefined);
    sock.setTimeout(idleMs, () => sock.destroy());
    sock.end(`${MAGIC} ${machineID}\n`);
  });
  server.maxConnections = limits.maxConnections ?? 256;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject);
      server.on('error', () => undefined);
      resolve(server);
    });
  });
}

export interface LivenessMonitorDeps {
  machineID: string;
  /** Registered machines (the cluster view) and the engine leader's machine ID. */
  machines: () => Iterable<MachineRecord>;
  leader: () => string | undefined;
  isLeader: () => boolean;
  /** When our own lease was last confirmed by the registry (ms since epoch). */
  lastRenewed: () => number;
  /** Evict a silent machine (Registry.evictMachine, guarded by our own registration); false: refused. */
  evict: (target: { id: string; lease: string }) => Promise<boolean>;
  log: Logger;
  timeoutMs: number;
  intervalMs: number;
  /** agent_ttl in ms. */
  ttlMs: number;
  probe?: typeof probeMachine;
  /** Time for silence and renewal ages (the lease keeper's clock; default: the system clock). */
  clock?: TimeSource;
}

/** Probes its targets every interval and revokes the leases of machines silent for too long. */
export class LivenessMonitor {
  private readonly tracker: LivenessTracker;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private warnedSelf = 0;
  /** Leases revoked by this monitor (for logs and tests). */
  readonly revoked: Revocation[] = [];

  constructor(private readonly d: LivenessMonitorDeps) {
    this.tracker = new LivenessTracker(d.timeoutMs);
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.d.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Whom to probe: everybody if we lead the engine, else the engine leader's machine. */
  private targets(): { targets: LivenessTarget[]; size: number } {
    const lead = this.d.isLeader();
    const leader = this.d.leader();
    const targets: LivenessTarget[] = [];
    let size = 0;
    for (const m of this.d.machines()) {
      size++;
      if (m.id === this.d.machineID || !m.lease || !m.livenessPort) continue;
      if (lead || m.id === leader)
        targets.push({ id: m.id, lease: m.lease, ip: m.publicIP, port: m.livenessPort });
    }
    return { targets, size };
  }

  async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const clock = this.d.clock ?? systemClock;
      const now = () => clock.now();
      const { targets, size } = this.targets();
      this.tracker.setTargets(targets, now());
      if (targets.length === 0) return;
      const probe = this.d.probe ?? probeMachine;
      const wait = Math.max(100, Math.min(this.d.intervalMs, 1000));
      await Promise.all(
        targets.map(async (t) => this.tracker.observe(t.id, await probe(t.ip, t.port, t.id, wait), now())),
      );
      // A prober whose own lease must have expired stays quiet. (Safety does not rest on this: a
      // revocation needs an etcd quorum, which a cut-off prober cannot reach.)
      if (now() - this.d.lastRenewed() > this.d.ttlMs) return;
      const due = this.tracker.due(now(), size);
      if (due.length === 0) {
        const silent = this.tracker.silentCount(now());
        if (silent > 0 && now() - this.warnedSelf > 10_000) {
          this.warnedSelf = now();
          this.d.log.warn(
            { silent, machines: size },
            `${silent} of ${size} machines are silent at once: not revoking anything (this machine may be the one cut off)`,
          );
        }
        return;
      }
      for (const r of due) {
        this.d.log.warn(
          { machineID: r.id, lease: r.lease },
          `${r.reason}: evicting it so its units move now`,
        );
        try {
          if (await this.d.evict({ id: r.id, lease: r.lease })) this.revoked.push(r);
          else
            this.d.log.info(
              { machineID: r.id },
              'eviction refused: the machine re-registered, or this machine is no longer registered itself',
            );
        } catch (err) {
          // The registry is unreachable: judge again at the next probe; the lease path applies.
          this.tracker.retry(r.id);
          this.d.log.info(
            { machineID: r.id, err: (err as Error).message },
            'evicting a silent machine failed',
          );
        }
      }
    } finally {
      this.running = false;
    }
  }
}
