/**
 * LeaseKeeper: holds one registry lease alive (presence of a machine, the engine's leadership).
 *
 * It grants a lease with `ttl` seconds and renews it every ttl/3. A renewal that fails because the
 * registry is unreachable is retried at the next tick (the lease survives while renewals land within
 * its TTL). When the registry says the lease is gone (E_LEASE_NOT_FOUND: it expired during an outage
 * or was revoked), the keeper emits `lost` and grants a fresh one, emitting `granted` with the new ID
 * so the owner can re-register what hung on the old one. No polling beyond the renewal timer.
 */
import { EventEmitter } from 'node:events';
import { systemClock, type Clock, type ClockTimer } from '../lib/clock.js';
import { isCode } from '../lib/errors.js';
import type { KvStore } from './kv.js';

export interface LeaseKeeperEvents {
  granted: [id: string];
  /** The registry confirmed the lease (grant or keepalive) at this time (ms since epoch). */
  renewed: [at: number];
  lost: [id: string];
  error: [err: Error];
}

export class LeaseKeeper extends EventEmitter<LeaseKeeperEvents> {
  private leaseId: string | undefined;
  private timer: ClockTimer | undefined;
  private stopped = false;
  private renewing = false;
  /** When the registry last confirmed the lease (ms by the clock: since the Unix epoch by default). */
  lastRenewed = 0;

  constructor(
    private readonly store: KvStore,
    readonly ttl: number,
    private readonly clock: Clock = systemClock,
  ) {
    super();
  }

  /** The current lease ID; undefined before the first grant or while re-granting. */
  get id(): string | undefined {
    return this.leaseId;
  }

  /** Grant the first lease and start renewing. Throws when the registry cannot be reached. */
  async start(): Promise<string> {
    const grant = await this.store.grantLease(this.ttl);
    this.leaseId = grant.id;
    this.lastRenewed = this.clock.now();
    this.schedule();
    this.emit('granted', grant.id);
    return grant.id;
  }

  /** Take over a lease that is known to be alive (e.g. our own, from before a restart). */
  adopt(id: string): void {
    this.leaseId = id;
    this.lastRenewed = this.clock.now();
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => void this.renew(), Math.max(200, (this.ttl * 1000) / 3));
  }

  /** Renew now (also called by the timer). */
  async renew(): Promise<void> {
    if (this.renewing || this.stopped) return;
    this.renewing = true;
    this.clock.clearTimeout(this.timer);
    try {
      if (this.leaseId !== undefined) {
        try {
          // Bounded by the renewal interval: a renewal stuck on a dead path must not delay the next.
          await this.store.keepAliveOnce(this.leaseId, { timeoutMs: Math.max(500, (this.ttl * 1000) / 3) });
          this.lastRenewed = this.clock.now();
          this.emit('renewed', this.lastRenewed);
          return;
        } catch (err) {
          if (!isCode(err, 'E_LEASE_NOT_FOUND')) throw err;
          const old = this.leaseId;
          this.leaseId = undefined;
          this.emit('lost', old);
        }
      }
      const grant = await this.store.grantLease(this.ttl);
      this.leaseId = grant.id;
      this.lastRenewed = this.clock.now();
      this.emit('granted', grant.id);
      this.emit('renewed', this.lastRenewed);
    } catch (err) {
      // Unreachable registry: try again at the next tick; the lease lives on until its TTL.
      if (this.listenerCount('error') > 0) this.emit('error', err as Error);
    } finally {
      this.renewing = false;
      this.schedule();
    }
  }

  /** Stop renewing; with `revoke`, delete the lease (and every key on it) now. */
  async stop(revoke: boolean): Promise<void> {
    this.stopped = true;
    this.clock.clearTimeout(this.timer);
    if (revoke && this.leaseId !== undefined) {
      await this.store.revokeLease(this.leaseId).catch(() => undefined);
    }
  }
}
