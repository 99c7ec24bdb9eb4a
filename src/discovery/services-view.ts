/**
 * ServicesView: this process's copy of the registry's service endpoints (`services/…`), kept current
 * by one watch on that prefix, like ClusterView does for the cluster state. Readers that route traffic
 * (the proxy, the API's watch stream) use it; it never polls.
 *
 *   start(): read every endpoint at revision R, then watch `services/` from R + 1.
 *   Each watch batch is applied in order; `changed(names)` fires once per batch with the services
 *   whose endpoints changed. A broken watch is retried with backoff from the last applied revision
 *   (the endpoints are kept meanwhile); a compacted revision means a fresh read.
 */
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { RegistryFollower } from '../registry/follow.js';
import type { WatchEvent } from '../registry/kv.js';
import type { EndpointEntry, Registry } from '../registry/registry.js';
import { KEYS, type ServiceEndpointRecord } from '../registry/types.js';

export interface EndpointSourceEvents {
  /** The endpoints of these services changed (added, removed or updated). */
  changed: [services: Set<string>];
  error: [err: Error];
}

/** Where the proxy and the API stream get endpoints from: a registry view, or the agent's API. */
export interface EndpointSource extends EventEmitter<EndpointSourceEvents> {
  /** The current endpoints of a service (every health), in a stable order. */
  endpoints(service: string): ServiceEndpointRecord[];
  /** Every service with at least one endpoint. */
  services(): string[];
}

/** Anything that can write the registry can write anything: an endpoint must at least be an address. */
function plausible(r: ServiceEndpointRecord): boolean {
  return (
    typeof r.ip === 'string' && isIP(r.ip) !== 0 && Number.isInteger(r.port) && r.port >= 1 && r.port <= 65535
  );
}

export class ServicesView extends EventEmitter<EndpointSourceEvents> implements EndpointSource {
  /** service → key → entry */
  private readonly byService = new Map<string, Map<string, EndpointEntry>>();
  revision = 0;
  private readonly follower: RegistryFollower;

  constructor(private readonly registry: Registry) {
    super();
    this.follower = new RegistryFollower({
      registry,
      prefix: KEYS.prefixes.service,
      revision: () => this.revision,
      apply: (rev, events) => this.apply(rev, events),
      resync: () => this.resync(),
      error: (err) => this.emit('error', err),
      backoffMs: 100,
    });
  }

  async start(): Promise<void> {
    await this.resync();
    void this.follower.run();
  }

  private async resync(): Promise<void> {
    const { revision, entries } = await this.registry.listEndpoints();
    const before = new Set(this.byService.keys());
    this.byService.clear();
    for (const e of entries) if (plausible(e.record)) this.set(e);
    this.revision = revision;
    this.emit('changed', new Set([...before, ...this.byService.keys()]));
  }

  private set(e: EndpointEntry): void {
    let m = this.byService.get(e.record.service);
    if (!m) this.byService.set(e.record.service, (m = new Map<string, EndpointEntry>()));
    m.set(e.key, e);
  }

  private apply(revision: number, events: WatchEvent[]): void {
    const changed = new Set<string>();
    for (const e of events) {
      const rest = e.kv.key.slice(KEYS.prefixes.service.length);
      const slash = rest.indexOf('/');
      if (slash <= 0) continue;
      const service = rest.slice(0, slash);
      if (e.type === 'put') {
        let record: ServiceEndpointRecord;
        try {
          record = JSON.parse(e.kv.value) as ServiceEndpointRecord;
        } catch {
          continue; // not ours: ignore what we cannot read
        }
        if (record.service !== service || !plausible(record)) continue;
        this.set({
          key: e.kv.key,
          record,
          createRevision: e.kv.createRevision,
          modRevision: e.kv.modRevision,
          lease: e.kv.lease,
        });
      } else {
        const m = this.byService.get(service);
        if (!m?.delete(e.kv.key)) continue;
        if (m.size === 0) this.byService.delete(service);
      }
      changed.add(service);
    }
    this.revision = revision;
    if (changed.size > 0) this.emit('changed', changed);
  }

  endpoints(service: string): ServiceEndpointRecord[] {
    return this.entries(service).map((e) => e.record);
  }

  /** Entries (with revisions) of one service, sorted by key. */
  entries(service: string): EndpointEntry[] {
    const m = this.byService.get(service);
    if (!m) return [];
    return [...m.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  services(): string[] {
    return [...this.byService.keys()].sort();
  }

  stop(): void {
    this.follower.stop();
  }
}
