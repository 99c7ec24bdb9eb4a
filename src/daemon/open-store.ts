/**
 * Open the registry the configuration asks for: a real etcd cluster when `etcd_servers` is set,
 * otherwise the embedded store under `<data_dir>/registry` (the single-machine default).
 */
import { join } from 'node:path';
import type { AgentConfig } from './config.js';
import { EmbeddedKvStore } from '../registry/embedded/index.js';
import type { EtcdConfig } from '../registry/etcd.js';
import { redactUrl } from '../lib/redact.js';
import type { Logger } from '../lib/log.js';
import { instrumentStore } from '../lib/metrics.js';
import type { KvStore } from '../registry/kv.js';
import { Registry } from '../registry/registry.js';

export async function openStore(config: AgentConfig): Promise<KvStore> {
  if (config.etcdServers.length === 0) {
    return EmbeddedKvStore.open({ dataDir: join(config.dataDir, 'registry') });
  }
  const etcd: EtcdConfig = {
    endpoints: config.etcdServers,
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
 * costs nothing; the store instrumented for /metrics. `config.etcdServers` is reordered in place.
 */
export async function openRegistry(
  config: AgentConfig,
  local: Set<string>,
  log: Logger,
): Promise<{ store: KvStore; registry: Registry }> {
  config.etcdServers = preferLocal(config.etcdServers, local);
  const store = instrumentStore(await openStore(config));
  // Never the password of a `user:pass@` endpoint.
  const shown = config.etcdServers.map(redactUrl);
  log.info(
    { registry: store.backend, endpoints: shown.length ? shown : undefined },
    `registry: ${store.backend === 'etcd' ? `etcd ${shown.join(',')}` : `embedded in ${config.dataDir}/registry`}`,
  );
  return { store, registry: new Registry(store) };
}
