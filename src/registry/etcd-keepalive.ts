/**
 * The one LeaseKeepAlive stream EtcdKvStore shares between all its leases: pings answered in order
 * per lease, a per-ping deadline, and a fresh stream when the open one has gone silent (a member
 * whose forwarding to a dead raft leader hangs).
 */
import type { Etcd3 } from 'etcd3';
import type * as RPC from 'etcd3/lib/rpc.js';
import { FlotillaError } from '../lib/errors.js';

/** A single long-lived LeaseKeepAlive stream shared by every lease of the store. */
export class KeepAliveStream {
  private stream:
    Promise<RPC.IDuplexStream<RPC.ILeaseKeepAliveRequest, RPC.ILeaseKeepAliveResponse>> | undefined;
  private readonly waiting = new Map<
    string,
    { resolve: (ttl: number) => void; reject: (e: unknown) => void }[]
  >();
  private lastData = Date.now();

  constructor(
    private readonly client: Etcd3,
    private readonly timeoutMs: number,
    private readonly onDead: () => void,
  ) {}

  private open() {
    if (this.stream) return this.stream;
    const opening = this.client.leaseClient.leaseKeepAlive().then((s) => {
      this.lastData = Date.now();
      s.on('data', (res: RPC.ILeaseKeepAliveResponse) => {
        this.lastData = Date.now();
        const id = String(res.ID);
        const list = this.waiting.get(id);
        const w = list?.shift();
        if (list && list.length === 0) this.waiting.delete(id);
        if (!w) return;
        const ttl = Number(res.TTL);
        if (ttl <= 0)
          w.reject(
            new FlotillaError('E_LEASE_NOT_FOUND', `lease ${id} expired or was revoked`, { lease: id }),
          );
        else w.resolve(ttl);
      });
      const die = (err: unknown) => {
        if (this.stream === opening) this.fail(err ?? new Error('keepalive stream ended'));
      };
      s.on('error', die);
      s.on('end', () => die(undefined));
      return s;
    });
    this.stream = opening;
    // A stream that could not be opened must not stay cached: the next ping dials again.
    opening.catch((err: unknown) => {
      if (this.stream === opening) this.fail(err);
    });
    return opening;
  }

  private fail(err: unknown): void {
    const s = this.stream;
    this.stream = undefined;
    for (const list of this.waiting.values()) for (const w of list) w.reject(err);
    this.waiting.clear();
    if (s) void s.then((x) => (x as unknown as { cancel?: () => void }).cancel?.()).catch(() => undefined);
    this.onDead();
  }

  /**
   * Start a fresh stream for the next pings and let this one drain. A member forwards keepalives to
   * the raft leader it knows; when that leader dies, the forwarding of an open stream can hang for
   * seconds (until etcd's own request timeout), long after a new leader was elected. A new stream is
   * forwarded anew. Late answers on the old one still resolve their waiters (same lease IDs).
   */
  private rotate(): void {
    const old = this.stream;
    this.stream = undefined;
    if (!old) return;
    // Half-close, not cancel: etcd then ends the stream normally, whereas a cancelled stream counts
    // as a failure in etcd3's pool, which resets the whole channel (every call and watch on it).
    const t = setTimeout(
      () => void old.then((x) => (x as unknown as { end?: () => void }).end?.()).catch(() => undefined),
      2 * this.timeoutMs,
    );
    t.unref();
  }

  async ping(id: string, timeoutMs = this.timeoutMs): Promise<number> {
    const opened = this.open();
    const s = await opened;
    const sentAt = Date.now();
    return new Promise<number>((resolve, reject) => {
      const entry = {
        resolve: (ttl: number) => {
          clearTimeout(timer);
          resolve(ttl);
        },
        reject: (e: unknown) => {
          clearTimeout(timer);
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      };
      const timer = setTimeout(() => {
        // Only this ping fails: other leases' pings on the stream are not torn down (a late answer
        // after an event-loop stall must not reset every lease). If the stream has said nothing since
        // this ping was sent, later pings go out on a fresh stream (see rotate).
        const list = this.waiting.get(id);
        const i = list?.indexOf(entry) ?? -1;
        if (list && i >= 0) list.splice(i, 1);
        reject(
          new FlotillaError('E_REGISTRY_UNAVAILABLE', `lease keepalive timed out after ${timeoutMs} ms`),
        );
        if (this.stream === opened && this.lastData < sentAt) this.rotate();
      }, timeoutMs);
      const list = this.waiting.get(id) ?? [];
      list.push(entry);
      this.waiting.set(id, list);
      s.write({ ID: id });
    });
  }

  close(): void {
    this.fail(new FlotillaError('E_CLOSED', 'etcd registry is closed (lease keepalive)'));
  }
}
