/**
 * Child for registry-etcd-tls.test.ts: opens an EtcdKvStore from the JSON config in argv[2], puts and
 * reads back one key, prints `ok <value>` or `err <code> <message>`. Run with NODE_EXTRA_CA_CERTS so
 * the test CA is among the process's default (system) roots: that proves which roots are used.
 */
import { EtcdKvStore, type EtcdConfig } from '../../src/registry/etcd.js';

const config = JSON.parse(process.argv[2] ?? '{}') as EtcdConfig;
const store = new EtcdKvStore({ requestTimeoutMs: 3000, ...config });
try {
  await store.put('child', 'via-system-roots');
  console.log(`ok ${(await store.get('child'))?.value}`);
} catch (err) {
  const e = err as Error & { code?: string };
  console.log(`err ${e.code ?? '?'} ${e.message}`);
} finally {
  await store.close();
}
