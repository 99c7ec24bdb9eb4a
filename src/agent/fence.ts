/**
 * Self-fencing: a machine cut off from the cluster stops its units once the cluster must consider it
 * dead, so a unit never runs twice for long (fleet #1690 left the stale copy running until the
 * partition healed).
 *
 * The rule, checked every 500 ms (or ttlMs/5 if shorter):
 *   fenced  ⇔  the presence lease was last confirmed more than ttlMs ago: agent_ttl, or less when
 *              peers probe this machine (liveness.ts), since they revoke a silent machine's lease
 *              before it expires (either way its units are being started elsewhere)
 *           ∧  no peer answers at the network level: neither another machine of the machine list
 *              (its liveness responder, public_ip:liveness_port) nor an etcd host of etcd_servers
 *              other than this machine.
 * The peers come from the machine list (the last one this agent saw), so the rule works in every
 * endpoint layout, also where etcd_servers names only the local member (http://127.0.0.1:2379, as
 * CoreOS clusters do): there the etcd endpoints give nothing to probe, and the machines do.
 * "Answers" means a TCP connect succeeds or is refused: a refused connect proves the path works and
 * only the service is down. With hosts answering and etcd not, the outage is cluster-wide; nothing
 * is rescheduled then, so the units keep running (fleet #1289). Only silence from every peer (a
 * partition) fences.
 * The fence lifts as soon as the lease is confirmed again; the planner then restores what is still
 * scheduled here.
 */
import { systemClock, type TimeSource } from '../lib/clock.js';
import { connect } from 'node:net';

export interface FenceDeps {
  ttlMs: number;
  lastRenewed: () => number;
  /** etcd endpoints (URLs); those on this machine are ignored. */
  endpoints: string[];
  ownAddresses: Set<string>;
  /** Other machines' liveness responders (from the machine list), read at every check. */
  peers?: () => { host: string; port: number }[];
  setFenced: (on: boolean) => void;
  /** Time for the renewal age (the lease keeper's clock; default: the system clock). */
  clock?: TimeSource;
  /** TCP probe: resolves true when the host answered (connected or refused). */
  probe?: (host: string, port: number, timeoutMs: number) => Promise<boolean>;
}

export function tcpAnswers(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (v: boolean) => {
      clearTimeout(t);
      sock.destroy();
      resolve(v);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    sock.once('connect', () => done(true));
    sock.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED'));
  });
}

export class FenceMonitor {
  private timer: NodeJS.Timeout | undefined;
  private fenced = false;
  private checking = false;
  private readonly remote: { host: string; port: number }[];

  constructor(private readonly d: FenceDeps) {
    this.remote = d.endpoints
      .map((e) => new URL(e))
      .map((u) => ({ host: u.hostname, port: Number(u.port || 2379) }))
      .filter(
        (h) =>
          !d.ownAddresses.has(h.host) &&
          !h.host.startsWith('127.') &&
          h.host !== 'localhost' &&
          h.host !== '[::1]',
      );
  }

  start(): void {
    // Nothing to tell a partition from an outage with: never fence.
    if (this.remote.length === 0 && !this.d.peers) return;
    this.timer = setInterval(() => void this.check(), Math.min(500, Math.max(100, this.d.ttlMs / 5)));
    this.timer.unref();
  }

  async check(): Promise<boolean> {
    if (this.checking) return this.fenced;
    this.checking = true;
    try {
      const now = (this.d.clock ?? systemClock).now();
      const expired = now - this.d.lastRenewed() > this.d.ttlMs;
      let fence = false;
      if (expired) {
        const probe = this.d.probe ?? tcpAnswers;
        const targets = [...this.remote, ...(this.d.peers?.() ?? [])];
        // No peer known at all (a one-machine cluster): there is no one to take the units over.
        if (targets.length > 0) {
          const answers = await Promise.all(targets.map((h) => probe(h.host, h.port, 400)));
          fence = !answers.some(Boolean);
        }
      }
      if (fence !== this.fenced) {
        this.fenced = fence;
        this.d.setFenced(fence);
      }
      return fence;
    } finally {
      this.checking = false;
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
