/**
 * EtcdKvStore: the KvStore port (src/registry/kv.ts) on a real etcd cluster, v3 API, through the
 * `etcd3` package's raw gRPC clients. Every call maps to exactly one etcd RPC, so this layer adds
 * little over the raw client (the registry benchmark measures it).
 *
 * What it adds to the raw client:
 *   - a key prefix (`etcd_key_prefix`), applied on the way in and stripped on the way out;
 *   - a per-request deadline, so an unreachable cluster fails with E_REGISTRY_UNAVAILABLE instead of
 *     hanging;
 *   - watches that resume from the last revision *we delivered* after the stream reconnects. etcd3's
 *     own watcher resumes from the header revision of the last response, which may be past events it
 *     has not delivered yet (a watch created at an old revision, or a catch-up batch), so we correct
 *     the resume point on every disconnect;
 *   - compaction reported as E_REGISTRY_COMPACTED;
 *   - one shared keep-alive stream for all leases;
 *   - endpoints tried in the configured order (preferred first) instead of at random.
 */
import { readFileSync } from 'node:fs';
import { Etcd3, EtcdLeaseInvalidError, type IOptions, type Watcher } from 'etcd3';
import { ConnectionPool } from 'etcd3/lib/connection-pool.js';
import { isRecoverableError } from 'etcd3/lib/errors.js';
import { ExponentialBackoff, handleWhen, noop, retry, type IBackoff, type IPolicy } from 'cockatiel';
import { HostBreaker } from './etcd-breaker.js';
import type * as RPC from 'etcd3/lib/rpc.js';
import { FlotillaError } from '../lib/errors.js';
import { redactUrl } from '../lib/redact.js';

export { redactUrl };
import { mapError } from './etcd-errors.js';
import { KeepAliveStream } from './etcd-keepalive.js';
import { EtcdWatch } from './etcd-watch.js';
import type {
  Compare,
  KeyValue,
  KvStore,
  LeaseGrant,
  Op,
  OpResult,
  RangeResult,
  Txn,
  TxnResult,
  Watch,
  WatchOptions,
} from './kv.js';

export interface EtcdConfig {
  /** Client URLs, e.g. `http://127.0.0.1:2379`. */
  endpoints: string[];
  /** Key prefix; every key this store touches lives below it. Default `/flotilla/`. */
  prefix?: string;
  /** PEM files for TLS / mTLS. `caFile` alone gives TLS with server verification. */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /**
   * etcd username/password auth (`etcd_username`, `etcd_password`). The URL form
   * `https://user:pass@host:2379` is accepted too; it must not disagree with these.
   */
  username?: string;
  password?: string;
  /** Deadline for one unary request, ms. Default 5000. */
  requestTimeoutMs?: number;
  /** Deadline to establish a connection, ms. Default 3000. */
  dialTimeoutMs?: number;
}

const CMP_TARGET = {
  version: 'Version',
  create: 'Create',
  mod: 'Mod',
  value: 'Value',
  lease: 'Lease',
} as const;
const CMP_RESULT = { '=': 'Equal', '!=': 'NotEqual', '<': 'Less', '>': 'Greater' } as const;

/** etcd's prefix range end: the key with its last byte < 0xff incremented and the rest dropped. */
export function rangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

export interface ParsedEndpoints {
  /** host:port of each endpoint, credentials removed. */
  hosts: string[];
  /** All endpoints are https:// (a mix is refused). */
  tls: boolean;
  /** Credentials from the URL form, when any endpoint carries them (all must carry the same). */
  username?: string;
  password?: string;
}

/**
 * Check `etcd_servers` and split off what the URLs carry: scheme (all http or all https; a mix is
 * refused so one endpoint cannot silently downgrade to plaintext) and `user:pass@` credentials.
 * Errors never quote a password: URLs are shown with it replaced by `***`.
 */
export function parseEndpoints(endpoints: string[]): ParsedEndpoints {
  const hosts: string[] = [];
  const schemes = new Set<string>();
  let cred: { username: string; password: string } | undefined;
  let credFrom = '';
  for (const e of endpoints) {
    let u: URL;
    try {
      u = new URL(e);
    } catch {
      throw new FlotillaError('E_CONFIG', `etcd_servers: ${JSON.stringify(redactUrl(e))} is not a URL`, {
        field: 'etcd_servers',
      });
    }
    const shown = JSON.stringify(redactUrl(e));
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new FlotillaError('E_CONFIG', `etcd_servers: ${shown}: scheme must be http or https`, {
        field: 'etcd_servers',
      });
    }
    schemes.add(u.protocol);
    if (u.username !== '' || u.password !== '') {
      const c = { username: decodeURIComponent(u.username), password: decodeURIComponent(u.password) };
      if (c.username === '') {
        throw new FlotillaError('E_CONFIG', `etcd_servers: ${shown}: a password without a user name`, {
          field: 'etcd_servers',
        });
      }
      if (cred && (cred.username !== c.username || cred.password !== c.password)) {
        throw new FlotillaError(
          'E_CONFIG',
          `etcd_servers: ${shown} and ${credFrom} carry different credentials`,
          { field: 'etcd_servers' },
        );
      }
      cred = c;
      credFrom = shown;
    }
    hosts.push(u.host);
  }
  if (schemes.size > 1) {
    throw new FlotillaError(
      'E_CONFIG',
      'etcd_servers: a mix of http:// and https:// endpoints; use one scheme (https:// for all, to keep TLS)',
      { field: 'etcd_servers' },
    );
  }
  return { hosts, tls: schemes.has('https:'), ...(cred ?? {}) };
}

function resolveAuth(
  parsed: ParsedEndpoints,
  config: EtcdConfig,
): { username: string; password: string } | undefined {
  if (config.password !== undefined && config.username === undefined) {
    throw new FlotillaError('E_CONFIG', 'etcd_password is set without etcd_username', {
      field: 'etcd_username',
    });
  }
  if (config.username !== undefined) {
    if (config.username === '') {
      throw new FlotillaError('E_CONFIG', 'etcd_username is empty', { field: 'etcd_username' });
    }
    if (
      parsed.username !== undefined &&
      (parsed.username !== config.username ||
        (config.password !== undefined && parsed.password !== config.password))
    ) {
      throw new FlotillaError(
        'E_CONFIG',
        'etcd_servers carries credentials that differ from etcd_username/etcd_password',
        { field: 'etcd_servers' },
      );
    }
    return { username: config.username, password: config.password ?? parsed.password ?? '' };
  }
  if (parsed.username !== undefined) return { username: parsed.username, password: parsed.password ?? '' };
  return undefined;
}

/** Keepalive sends per renewal when the stream breaks (see keepAliveOnce). */
const KEEPALIVE_ATTEMPTS = 4;

export class EtcdKvStore implements KvStore {
  readonly backend = 'etcd' as const;
  readonly client: Etcd3;
  private readonly prefix: Buffer;
  private readonly timeoutMs: number;
  private keepAlive: KeepAliveStream | undefined;
  private readonly watches = new Set<EtcdWatch>();
  private closed = false;

  constructor(config: EtcdConfig) {
    if (config.endpoints.length === 0) throw new FlotillaError('E_CONFIG', 'etcd_servers: no endpoint given');
    this.prefix = Buffer.from(config.prefix ?? '/flotilla/', 'utf8');
    this.timeoutMs = config.requestTimeoutMs ?? 5000;
    const parsed = parseEndpoints(config.endpoints);
    const hosts = parsed.hosts;
    // Endpoints are tried in the order given (the first is preferred; the next ones on failure),
    // not at random: an agent lists its own machine's member first, so a silently partitioned
    // remote member cannot stall its lease keepalives and watches (etcd3 walks hosts from the end
    // of its list when deterministicOrder is set).
    ConnectionPool.deterministicOrder = true;
    const options: IOptions = {
      hosts: [...hosts].reverse(),
      dialTimeout: config.dialTimeoutMs ?? 3000,
      // A 10,000-unit registry snapshot is ~9 MB; grpc-js refuses replies over 4 MiB by default.
      // grpc-js waits up to 120 s between reconnects to a member it lost: at most 2 s here, so a
      // member that is back (or the only one) is used again within a lease TTL.
      grpcOptions: {
        'grpc.max_receive_message_length': 256 * 1024 * 1024,
        'grpc.initial_reconnect_backoff_ms': 500,
        'grpc.max_reconnect_backoff_ms': 2000,
      },
      faultHandling: {
        // A member that failed 3 times in a row is skipped for 1 s (etcd3's default is 5 s, which
        // kept restarted members out of use long after they were back), and a call is tried on every
        // member. HostBreaker, not cockatiel's breaker: that one counts the opening of a watch or
        // keepalive stream as a success, so streams never skipped a dead member (etcd-breaker.ts).
        // With a single member there is nothing to skip to: a breaker would only turn a few slow
        // answers under load into a second of instant failures for every call.
        host: () =>
          hosts.length > 1
            ? (new HostBreaker({
                counts: isRecoverableError,
                failures: 3,
                halfOpenAfterMs: 1000,
              }) as unknown as IPolicy)
            : noop,
        // A watch that lost its member reconnects within 1 s (etcd3's default backoff grows to 30 s,
        // during which the agent saw no change of the cluster).
        // (etcd3 types this as an IBackoff and calls next() on it: the factory is what its default passes.)
        watchBackoff: new ExponentialBackoff({
          initialDelay: 100,
          maxDelay: 1000,
        }) as unknown as IBackoff<unknown>,
        global: retry(handleWhen(isRecoverableError), { maxAttempts: hosts.length + 1 }),
      },
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + this.timeoutMs }),
    };
    const tlsFiles =
      config.caFile !== undefined || config.certFile !== undefined || config.keyFile !== undefined;
    if (tlsFiles && !parsed.tls) {
      throw new FlotillaError(
        'E_CONFIG',
        'etcd_servers: http:// endpoints with etcd_cafile/etcd_certfile/etcd_keyfile set: use https:// (TLS is never chosen by the files alone)',
        { field: 'etcd_servers' },
      );
    }
    if ((config.certFile === undefined) !== (config.keyFile === undefined)) {
      throw new FlotillaError('E_CONFIG', 'etcd_certfile and etcd_keyfile must be given together', {
        field: config.certFile === undefined ? 'etcd_certfile' : 'etcd_keyfile',
      });
    }
    if (parsed.tls) {
      const read = (field: string, path: string | undefined) => {
        if (path === undefined) return undefined;
        try {
          return readFileSync(path);
        } catch (err) {
          throw new FlotillaError('E_CONFIG', `${field}: cannot read ${path}: ${(err as Error).message}`, {
            field,
          });
        }
      };
      const ca = read('etcd_cafile', config.caFile);
      const cert = read('etcd_certfile', config.certFile);
      const key = read('etcd_keyfile', config.keyFile);
      options.credentials = {
        // No CA file: null makes grpc-js use the default (system) roots. An empty buffer would mean
        // "trust nothing" and every handshake would fail.
        rootCertificate: ca ?? (null as unknown as Buffer),
        ...(key ? { privateKey: key } : {}),
        ...(cert ? { certChain: cert } : {}),
      };
    }
    const auth = resolveAuth(parsed, config);
    if (auth) options.auth = auth;
    this.client = new Etcd3(options);
  }

  private k(key: string): Buffer {
    return Buffer.concat([this.prefix, Buffer.from(key, 'utf8')]);
  }

  private unk(key: Buffer): string {
    return key.subarray(this.prefix.length).toString('utf8');
  }

  private kv(raw: RPC.IKeyValue): KeyValue {
    return {
      key: this.unk(raw.key),
      value: raw.value.toString('utf8'),
      createRevision: Number(raw.create_revision),
      modRevision: Number(raw.mod_revision),
      version: Number(raw.version),
      lease: String(raw.lease ?? '0'),
    };
  }

  private rangeReq(key: string, prefix: boolean): { key: Buffer; range_end?: Buffer } {
    const k = this.k(key);
    return prefix ? { key: k, range_end: rangeEnd(k) } : { key: k };
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new FlotillaError('E_CLOSED', `etcd registry is closed (${what})`);
    try {
      return await fn();
    } catch (err) {
      throw mapError(err, what);
    }
  }

  async get(key: string): Promise<KeyValue | undefined> {
    const res = await this.call('get', () => this.client.kv.range(this.rangeReq(key, false)));
    const raw = res.kvs[0];
    return raw ? this.kv(raw) : undefined;
  }

  async range(prefix: string, opts: { limit?: number } = {}): Promise<RangeResult> {
    const req: RPC.IRangeRequest = { ...this.rangeReq(prefix, true) };
    if (opts.limit !== undefined) req.limit = opts.limit;
    const res = await this.call('range', () => this.client.kv.range(req));
    return { kvs: res.kvs.map((r) => this.kv(r)), revision: Number(res.header.revision) };
  }

  async put(key: string, value: string, opts: { lease?: string } = {}): Promise<{ revision: number }> {
    const req: RPC.IPutRequest = { key: this.k(key), value: Buffer.from(value, 'utf8') };
    if (opts.lease !== undefined) req.lease = opts.lease;
    const res = await this.call('put', () => this.client.kv.put(req));
    return { revision: Number(res.header.revision) };
  }

  async delete(key: string, opts: { prefix?: boolean } = {}): Promise<{ revision: number; deleted: number }> {
    const res = await this.call('delete', () =>
      this.client.kv.deleteRange(this.rangeReq(key, opts.prefix ?? false)),
    );
    return { revision: Number(res.header.revision), deleted: Number(res.deleted) };
  }

  private compare(c: Compare): RPC.ICompare {
    const out: RPC.ICompare = { key: this.k(c.key), target: CMP_TARGET[c.target], result: CMP_RESULT[c.op] };
    switch (c.target) {
      case 'value':
        out.value = Buffer.from(c.value, 'utf8');
        break;
      case 'version':
        out.version = c.value;
        break;
      case 'create':
        out.create_revision = c.value;
        break;
      case 'mod':
        out.mod_revision = c.value;
        break;
      case 'lease':
        out.lease = c.value;
        break;
    }
    return out;
  }

  private requestOp(o: Op): RPC.IRequestOp {
    switch (o.type) {
      case 'put': {
        const put: RPC.IPutRequest = { key: this.k(o.key), value: Buffer.from(o.value, 'utf8') };
        if (o.lease !== undefined) put.lease = o.lease;
        return { request_put: put };
      }
      case 'delete':
        return { request_delete_range: this.rangeReq(o.key, o.prefix ?? false) };
      case 'get':
        return { request_range: this.rangeReq(o.key, o.prefix ?? false) };
    }
  }

  private opResult(r: RPC.IResponseOp): OpResult {
    if (r.response_put) return { type: 'put' };
    if (r.response_delete_range) return { type: 'delete', deleted: Number(r.response_delete_range.deleted) };
    if (r.response_range) return { type: 'get', kvs: r.response_range.kvs.map((x) => this.kv(x)) };
    throw new FlotillaError('E_REGISTRY_UNAVAILABLE', 'etcd returned an unknown txn response');
  }

  async txn(txn: Txn): Promise<TxnResult> {
    const req: RPC.ITxnRequest = {
      compare: txn.compare.map((c) => this.compare(c)),
      success: txn.success.map((o) => this.requestOp(o)),
      failure: (txn.failure ?? []).map((o) => this.requestOp(o)),
    };
    const res = await this.call('txn', () => this.client.kv.txn(req));
    return {
      succeeded: res.succeeded,
      revision: Number(res.header.revision),
      results: res.responses.map((r) => this.opResult(r)),
    };
  }

  async grantLease(ttlSeconds: number): Promise<LeaseGrant> {
    const res = await this.call('lease grant', () =>
      this.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 }),
    );
    if (res.error) throw new FlotillaError('E_REGISTRY_UNAVAILABLE', `lease grant failed: ${res.error}`);
    return { id: String(res.ID), ttl: Number(res.TTL) };
  }

  /**
   * One keepalive of lease `id` within `timeoutMs`. When the stream breaks (a gRPC error: the member
   * is down), the ping is sent again at once on a fresh stream, up to KEEPALIVE_ATTEMPTS times within
   * the same deadline. Each failure is counted by that member's breaker (etcd-breaker.ts: 3 in a row
   * open it, 1 when it is half-open), and an open breaker makes etcd3 take the next member. Without
   * the retry, a renewal every second met a breaker that was half-open again every second, so every
   * renewal went to the dead member and none to the others: in the local-member layout an agent
   * whose own member died lost its lease (cluster-etcd, "one etcd member of three lost").
   * A timeout, an expired lease and a closed store are not retried.
   */
  async keepAliveOnce(id: string, opts: { timeoutMs?: number } = {}): Promise<number> {
    const budget = Math.min(this.timeoutMs, opts.timeoutMs ?? this.timeoutMs);
    const t0 = Date.now();
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new FlotillaError('E_CLOSED', 'etcd registry is closed (lease keepalive)');
      this.keepAlive ??= new KeepAliveStream(this.client, this.timeoutMs, () => (this.keepAlive = undefined));
      try {
        return await this.keepAlive.ping(id, Math.max(1, budget - (Date.now() - t0)));
      } catch (err) {
        const left = budget - (Date.now() - t0);
        if (!(err instanceof FlotillaError) && attempt < KEEPALIVE_ATTEMPTS && left > 50) continue;
        throw mapError(err, 'lease keepalive', id);
      }
    }
  }

  async revokeLease(id: string): Promise<void> {
    await this.call('lease revoke', async () => {
      try {
        await this.client.leaseClient.leaseRevoke({ ID: id });
      } catch (err) {
        if (err instanceof EtcdLeaseInvalidError) return; // revoking a gone lease is a no-op
        throw err;
      }
    });
  }

  async leaseTimeToLive(id: string): Promise<number | undefined> {
    const res = await this.call('lease ttl', () =>
      this.client.leaseClient.leaseTimeToLive({ ID: id, keys: false }),
    );
    const ttl = Number(res.TTL);
    return ttl < 0 ? undefined : ttl;
  }

  async revision(): Promise<number> {
    // A range over an empty key space still carries the store's current revision.
    const res = await this.call('revision', () =>
      this.client.kv.range({ key: this.k('\0revision-probe'), count_only: true }),
    );
    return Number(res.header.revision);
  }

  watch(prefix: string, opts: WatchOptions = {}): Watch {
    if (this.closed) throw new FlotillaError('E_CLOSED', 'etcd registry is closed (watch)');
    const w = new EtcdWatch(this, prefix, opts, (x) => this.watches.delete(x));
    this.watches.add(w);
    return w;
  }

  /** @internal used by EtcdWatch */
  buildWatcher(prefix: string, fromRevision: number | undefined, prevKv: boolean): Watcher {
    let b = this.client.watch().prefix(this.k(prefix));
    if (fromRevision !== undefined) b = b.startRevision(String(fromRevision));
    if (prevKv) b = b.withPreviousKV();
    return b.watcher();
  }

  /** @internal */
  toKv(raw: RPC.IKeyValue): KeyValue {
    return this.kv(raw);
  }

  /** @internal true when `rev` was compacted away (a range at that revision fails). */
  async isCompacted(rev: number): Promise<boolean> {
    try {
      await this.client.kv.range({ key: this.k('\0revision-probe'), revision: rev, count_only: true });
      return false;
    } catch (err) {
      return /compacted/i.test((err as Error).message);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of [...this.watches]) w.close();
    this.keepAlive?.close();
    this.client.close();
    await Promise.resolve();
  }
}
