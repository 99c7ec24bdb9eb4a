/**
 * `flotilla etcd add-member|remove-member|list-members`: etcd's member API (through etcd3), guarded.
 *
 * The guard is etcd's own `--strict-reconfig-check` rule, applied before the call and explained:
 *   - add: every member must be healthy (answers Status with a leader, no errors). Adding a member to
 *     a cluster with a dead one raises the quorum while the new member is not running yet: with 3
 *     members and 1 dead, the 4th (unstarted) makes 2 of 4 live, and the cluster stops.
 *   - remove: every member except the one removed must be healthy (removing a dead member is how it
 *     is replaced), and the target must exist.
 * The decision is a pure function (`checkChange`) of the member list and each member's health; the
 * client part only gathers those and calls the API.
 */
import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions } from 'etcd3';
import { FlotillaError } from '../lib/errors.js';
import { parseEndpoints } from '../registry/etcd.js';

export interface Member {
  /** Hex member ID, as etcdctl prints it. */
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

export interface Health {
  ok: boolean;
  /** Why not, for the message. */
  why?: string;
}

export type Change = { kind: 'add'; name: string; peerURL: string } | { kind: 'remove'; member: string };

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function describeMember(m: Member): string {
  return `${m.name || '(unstarted)'} (${m.id}${m.clientURLs[0] ? `, ${m.clientURLs[0]}` : ''})`;
}

/** Check a peer URL: http(s)://host:port with nothing else. */
export function checkPeerURL(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new FlotillaError(
      'E_ETCD_MEMBER',
      `PEER_URL ${JSON.stringify(raw)} is not a URL like http://10.0.0.4:2380`,
      {
        field: 'PEER_URL',
      },
    );
  }
  if (
    (u.protocol !== 'http:' && u.protocol !== 'https:') ||
    !u.port ||
    u.username ||
    u.password ||
    u.search ||
    u.hash ||
    (u.pathname !== '/' && u.pathname !== '')
  )
    throw new FlotillaError(
      'E_ETCD_MEMBER',
      `PEER_URL ${JSON.stringify(raw)} must be http(s)://HOST:PORT (no path, query or credentials)`,
      {
        field: 'PEER_URL',
      },
    );
  return `${u.protocol}//${u.host}`;
}

/**
 * The pure guard: the member the change is about (for remove), or an E_ETCD_MEMBER naming the
 * unhealthy member(s), the duplicate name/URL, or the unknown member.
 */
export function checkChange(
  members: readonly Member[],
  health: ReadonlyMap<string, Health>,
  change: Change,
): Member | undefined {
  let target: Member | undefined;
  if (change.kind === 'add') {
    if (!NAME.test(change.name))
      throw new FlotillaError(
        'E_ETCD_MEMBER',
        `NAME ${JSON.stringify(change.name)} is not a member name (letters, digits, . _ -)`,
        { field: 'NAME' },
      );
    const url = checkPeerURL(change.peerURL);
    const byName = members.find((m) => m.name === change.name);
    if (byName)
      throw new FlotillaError(
        'E_ETCD_MEMBER',
        `a member named ${change.name} exists already: ${describeMember(byName)}`,
        { field: 'NAME' },
      );
    const byUrl = members.find((m) => m.peerURLs.map((p) => p.replace(/\/$/, '')).includes(url));
    if (byUrl)
      throw new FlotillaError('E_ETCD_MEMBER', `peer URL ${url} is already member ${describeMember(byUrl)}`, {
        field: 'PEER_URL',
      });
  } else {
    target = members.find((m) => m.name === change.member || m.id === change.member.toLowerCase());
    if (!target)
      throw new FlotillaError(
        'E_ETCD_MEMBER',
        `no member named or with ID ${change.member}; members: ${members.map(describeMember).join(', ')}`,
        { field: 'MEMBER' },
      );
    if (members.length === 1)
      throw new FlotillaError(
        'E_ETCD_MEMBER',
        `${describeMember(target)} is the last member: removing it would end the cluster`,
        { field: 'MEMBER' },
      );
  }
  const sick = members.filter((m) => m !== target && !health.get(m.id)?.ok);
  if (sick.length) {
    const what = change.kind === 'add' ? `add ${change.name}` : `remove ${describeMember(target!)}`;
    throw new FlotillaError(
      'E_ETCD_MEMBER',
      `refusing to ${what}: the cluster is not healthy: ${sick
        .map((m) => `member ${describeMember(m)} is unhealthy: ${health.get(m.id)?.why ?? 'no answer'}`)
        .join(
          '; ',
        )}${change.kind === 'add' ? ' (replace it first: remove-member it, then add its replacement)' : ''}`,
      { unhealthy: sick.map((m) => m.name || m.id) },
    );
  }
  return target;
}

export interface EtcdAccess {
  endpoints: string[];
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  timeoutMs?: number;
}

/** The etcd member API and per-member health, over etcd3. */
export class EtcdMembers {
  constructor(private readonly access: EtcdAccess) {}

  private client(endpoints: string[]): Etcd3 {
    const parsed = parseEndpoints(endpoints);
    const files = this.access.caFile ?? this.access.certFile ?? this.access.keyFile;
    if (files && !parsed.tls)
      throw new FlotillaError(
        'E_CONFIG',
        'etcd endpoints are http:// but TLS files were given: use https://',
        { field: 'etcd_servers' },
      );
    const timeout = this.access.timeoutMs ?? 3000;
    const opts: IOptions = {
      hosts: parsed.hosts,
      dialTimeout: timeout,
      defaultCallOptions: () => ({ deadline: Date.now() + timeout }),
    };
    if (parsed.tls) {
      const read = (p: string | undefined) => (p ? readFileSync(p) : undefined);
      const key = read(this.access.keyFile);
      const cert = read(this.access.certFile);
      opts.credentials = {
        rootCertificate: read(this.access.caFile) ?? (null as unknown as Buffer),
        ...(key ? { privateKey: key } : {}),
        ...(cert ? { certChain: cert } : {}),
      };
    }
    if (parsed.username !== undefined && parsed.password !== undefined)
      opts.auth = { username: parsed.username, password: parsed.password };
    return new Etcd3(opts);
  }

  private async withClient<T>(endpoints: string[], fn: (c: Etcd3) => Promise<T>): Promise<T> {
    const c = this.client(endpoints);
    try {
      return await fn(c);
    } finally {
      c.close();
    }
  }

  async list(): Promise<{ clusterID: string; members: Member[] }> {
    try {
      return await this.withClient(this.access.endpoints, async (c) => {
        const r = await c.cluster.memberList({ linearizable: true });
        return {
          clusterID: BigInt(r.header.cluster_id).toString(16),
          members: r.members.map((m) => ({
            id: BigInt(m.ID).toString(16),
            name: m.name,
            peerURLs: m.peerURLs,
            clientURLs: m.clientURLs,
            isLearner: Boolean(m.isLearner),
          })),
        };
      });
    } catch (err) {
      if (err instanceof FlotillaError) throw err;
      throw new FlotillaError(
        'E_REGISTRY_UNAVAILABLE',
        `etcd member list from ${this.access.endpoints.join(',')} failed: ${(err as Error).message}`,
        {
          endpoints: this.access.endpoints,
        },
      );
    }
  }

  /** Each member asked directly (its first client URL): Status, with a leader and no errors. */
  async health(members: readonly Member[]): Promise<Map<string, Health>> {
    const out = new Map<string, Health>();
    await Promise.all(
      members.map(async (m) => {
        if (m.clientURLs.length === 0) {
          out.set(m.id, { ok: false, why: 'added but never started (no client URL)' });
          return;
        }
        try {
          const s = await this.withClient([m.clientURLs[0]!], (c) => c.maintenance.status());
          if (s.errors.length) out.set(m.id, { ok: false, why: s.errors.join('; ') });
          else if (s.leader === '0') out.set(m.id, { ok: false, why: 'no leader' });
          else out.set(m.id, { ok: true });
        } catch (err) {
          const msg = (err as Error).message.split('\n')[0]!.replace(/\.? ?Resolution note:.*$/, '');
          out.set(m.id, { ok: false, why: `${m.clientURLs[0]}: ${msg}` });
        }
      }),
    );
    return out;
  }

  private async call<T>(what: string, fn: (c: Etcd3) => Promise<T>): Promise<T> {
    try {
      return await this.withClient(this.access.endpoints, fn);
    } catch (err) {
      if (err instanceof FlotillaError) throw err;
      if ((err as Error).message.includes('etcdserver: unhealthy cluster'))
        throw new FlotillaError(
          'E_ETCD_MEMBER',
          `etcd refused the ${what}: unhealthy cluster (etcd's own check: a member is down, or its peers have been connected for less than 5 s; try again)`,
          { endpoints: this.access.endpoints },
        );
      throw new FlotillaError(
        'E_REGISTRY_UNAVAILABLE',
        `etcd ${what} through ${this.access.endpoints.join(',')} failed: ${(err as Error).message.split('\n')[0]}`,
        { endpoints: this.access.endpoints },
      );
    }
  }

  async add(peerURL: string): Promise<{ id: string; members: Member[] }> {
    return this.call('member add', async (c) => {
      const r = await c.cluster.memberAdd({ peerURLs: [peerURL] });
      return {
        id: BigInt(r.member.ID).toString(16),
        members: r.members.map((m) => ({
          id: BigInt(m.ID).toString(16),
          name: m.name,
          peerURLs: m.peerURLs,
          clientURLs: m.clientURLs,
          isLearner: Boolean(m.isLearner),
        })),
      };
    });
  }

  async remove(id: string): Promise<void> {
    await this.call('member remove', (c) => c.cluster.memberRemove({ ID: BigInt(`0x${id}`).toString() }));
  }
}
