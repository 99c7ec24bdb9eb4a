/**
 * Read the whole registry the way ClusterView.start() does (Registry.snapshot with bodies: one txn of
 * prefix gets), but through a raw etcd3 client whose gRPC receive limit is raised, so that the size
 * of that response and the heap of the parsed copy can be measured even when flotilla's own client
 * (grpc-js default limit: 4 MiB) cannot receive it.
 */
import { Etcd3 } from 'etcd3';
import { KEYS } from '../../src/registry/types.js';

export interface FullRead {
  /** Bytes of keys and values in the response (the protobuf message is a little larger). */
  bytes: number;
  kvs: number;
  /** The parsed copy (keep it alive while measuring heap). */
  copy: Map<string, Map<string, unknown>>;
}

export async function fullRead(endpoint: string, prefix: string): Promise<FullRead> {
  const client = new Etcd3({
    hosts: endpoint.replace(/^https?:\/\//, ''),
    grpcOptions: { 'grpc.max_receive_message_length': 512 * 1024 * 1024 },
  });
  try {
    const res = await client.kv.txn({
      compare: [],
      success: Object.values(KEYS.prefixes).map((p) => {
        const key = Buffer.from(prefix + p);
        const end = Buffer.from(key);
        end[end.length - 1]! += 1;
        return { request_range: { key, range_end: end } };
      }),
      failure: [],
    });
    const copy = new Map<string, Map<string, unknown>>();
    let bytes = 0;
    let kvs = 0;
    for (const r of res.responses) {
      for (const kv of r.response_range?.kvs ?? []) {
        bytes += kv.key.length + kv.value.length;
        kvs++;
        const key = kv.key.toString('utf8').slice(prefix.length);
        const kind = key.slice(0, key.indexOf('/'));
        let m = copy.get(kind);
        if (!m) copy.set(kind, (m = new Map<string, unknown>()));
        m.set(key, JSON.parse(kv.value.toString('utf8')));
      }
    }
    return { bytes, kvs, copy };
  } finally {
    client.close();
  }
}
