/**
 * Open the registry the configuration asks for: a real etcd cluster when `etcd_servers` is set,
 * otherwise the embedded store under `<data_dir>/registry` (the single-machine default).
 */
import { join } from 'node:path';
import type { AgentConfig } from './config.js';
import { EmbeddedKvStore } from '../registry/embedded/index.js';
import { EtcdKvStore, type EtcdConfig } from '../registry/etcd.js';
import type { KvStore } from '../registry/kv.js';

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
  return new EtcdKvStore(etcd);
}
