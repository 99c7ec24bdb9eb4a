/**
 * The registry contract suite (test/support/kv-contract.ts), unchanged, against:
 *   1. the embedded backend (a fresh data dir),
 *   2. a real single-member etcd (started by this file, data on disk),
 *   3. the test environment's real 3-member loopback etcd cluster, including each member killed
 *      (kill -9) and restarted while a watch is open.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe } from 'vitest';
import { EmbeddedKvStore } from '../../src/registry/embedded/index.js';
import { EtcdKvStore } from '../../src/registry/etcd.js';
import type { KvStore } from '../../src/registry/kv.js';
import { etcdBinary, startSingleEtcd, type SingleEtcd } from '../support/etcd-single.js';
import { kvContract } from '../support/kv-contract.js';
import { describeEtcdCluster, etcdEndpoints, killEtcdMember, restartEtcd } from '../support/testbed.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('embedded', () => {
  kvContract('embedded', {
    open() {
      const dir = mkdtempSync(join(tmpdir(), 'flotilla-reg-'));
      dirs.push(dir);
      return EmbeddedKvStore.open({ dataDir: dir });
    },
    compact: (store, revision) => (store as EmbeddedKvStore).compactHistory(revision),
  });
});

async function etcdCompact(store: KvStore, revision: number): Promise<void> {
  await (store as EtcdKvStore).client.kv.compact({ revision: String(revision), physical: true });
}

const haveEtcd = etcdBinary() !== undefined;
if (!haveEtcd && process.env.TESTENV_REQUIRED === '1') {
  throw new Error('etcd is not installed: run test/env/up.sh (TESTENV_REQUIRED=1 forbids skipping)');
}
(haveEtcd ? describe : describe.skip)('single-member etcd', () => {
  let etcd: SingleEtcd | undefined;
  beforeAll(async () => {
    etcd = await startSingleEtcd();
  });
  afterAll(async () => {
    await etcd?.stop();
  });
  kvContract('etcd, 1 member', {
    open: () =>
      Promise.resolve(
        new EtcdKvStore({ endpoints: [etcd!.endpoint], prefix: `/flotilla-test/${randomUUID()}/` }),
      ),
    compact: etcdCompact,
  });
});

describeEtcdCluster('3-member etcd cluster', () => {
  kvContract('etcd, 3 members', {
    open: () =>
      Promise.resolve(
        new EtcdKvStore({
          endpoints: etcdEndpoints!,
          prefix: `/flotilla-test/${randomUUID()}/`,
          requestTimeoutMs: 3000,
        }),
      ),
    compact: etcdCompact,
    members: {
      count: 3,
      kill: (i) => killEtcdMember(i),
      restart: () => restartEtcd(),
    },
  });
});
