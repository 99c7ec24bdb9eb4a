/**
 * Open the registry the configuration asks for: a real etcd cluster when `etcd_servers` is set,
 * otherwise the embedded store under `<data_dir>/registry` (the single-machine default).
 */
import { join } from 'node:path';
import type { AgentConfig } from './config.js';
import { EmbeddedKvStore } from '../registry/embedded/index.js';
import type { EtcdConfig, EtcdKvStore } from '../registry/etcd.js';
import { extraEndpoints, readKnownMembers } from '../registry/etcd-members.js';
import { writeAtomic } from '../lib/fs.js';
import { redactUrl } from '../lib/redact.js';
import type { Logger } from '../lib/log.js';
import { instrumentStore } from '../lib/metrics.js';
import type { KvStore } from '../registry/kv.js';
import { Registry } from '../registry/registry.js';

export async function openStore(config: AgentConfig, fallback: string[] = []): Promise<KvStore> {
  if (config.etcdServers.length === 0) {
    return EmbeddedKvStore.open({ dataDir: join(config.dataDir, 'registry') });
  }
  const etcd: EtcdConfig = {
    endpoints: [...config.etcdServers, ...fallback],
    prefix: config.etcdKeyPrefix,
    requestTimeoutMs: Math.round(config.etcdRequestTimeout * 1000),
  };
  if (config.etcdCafile) etcd.caFile = config.etcdCafile;
  if (config.etcdCertfile) etcd.certFile = config.etcdCertfile;
  if (config.etcdKeyfile) etcd.keyFile = config.etcdKeyfile;
  if (config.etcdUsername !== undefined) etcd.username = config.etcdUsername;
  if (config.etcdPassword !== undefined) etcd.password = config.etcdPassword;
  // etcd3 (with gRPC and protobufjs, ~30 MB) is loaded only when a cluster is configured.
  const { EtcdKvStore } = await import('../registry/etcd.js');
  return new EtcdKvStore(etcd);
}

/** Endpoints on this machine first, the rest in the order given. */
export function preferLocal(endpoints: string[], local: Set<string>): string[] {
  const isLocal = (e: string) => {
    try {
      const h = new URL(e).hostname;
      return local.has(h) || h === 'localhost' || h.startsWith('127.');
    } catch {
      return false;
    }
  };
  return [...endpoints.filter(isLocal), ...endpoints.filter((e) => !isLocal(e))];
}

/**
 * The agent's registry: endpoints on this machine (`local`) first, so a partitioned remote member
 * costs nothing, then the other etcd members from etcd's member list as fallbacks
 * (registry/etcd-members.ts); the store instrumented for /metrics. `config.etcdServers` is
 * reordered in place; `endpoints` is every endpoint the store uses (configured, then discovered).
 */
export async function openRegistry(
  config: AgentConfig,
  local: Set<string>,
  log: Logger,
): Promise<{ store: KvStore; registry: Registry; endpoints: string[] }> {
  config.etcdServers = preferLocal(config.etcdServers, local);
  let fallback: string[] = [];
  let raw = await openStore(config);
  if (raw.backend === 'etcd') {
    const file = join(config.dataDir, 'etcd-members.json');
    const kept = readKnownMembers(file);
    const known = extraEndpoints(config.etcdServers, [{ clientURLs: kept }], local);
    const found = await discover(raw as EtcdKvStore, config.etcdServers, local);
    if (found === undefined) {
      if (known.length > 0)
        log.info({ members: known }, 'etcd member list not readable now: using the known members');
    } else if (found.join(',') !== kept.join(',')) {
      try {
        writeAtomic(file, `${JSON.stringify(found)}\n`);
      } catch (err) {
        log.warn({ file, err: (err as Error).message }, 'could not keep the etcd member list');
      }
    }
    fallback = found ?? known;
    if (fallback.length > 0) {
      await raw.close();
      raw = await openStore(config, fallback);
    }
  }
  const store = instrumentStore(raw);
  // Never the password of a `user:pass@` endpoint.
  const shown = config.etcdServers.map(redactUrl);
  log.info(
    {
      registry: store.backend,
      endpoints: shown.length ? shown : undefined,
      fallback: fallback.length ? fallback : undefined,
    },
    `registry: ${store.backend === 'etcd' ? `etcd ${shown.join(',')}${fallback.length ? ` (then the other members: ${fallback.join(',')})` : ''}` : `embedded in ${config.dataDir}/registry`}`,
  );
  return { store, registry: new Registry(store), endpoints: [...config.etcdServers, ...fallback] };
}

/** The other members' client URLs from etcd's member list (served by any member, also without quorum). */
async function discover(
  store: EtcdKvStore,
  configured: string[],
  local: Set<string>,
): Promise<string[] | undefined> {
  try {
    const r = await store.client.cluster.memberList({ linearizable: false });
    return extraEndpoints(configured, r.members, local);
  } catch {
    return undefined;
  }
}
