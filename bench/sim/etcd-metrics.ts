/**
 * Server-side request counts from etcd's Prometheus endpoint (`<client URL>/metrics`):
 * `grpc_server_msg_received_total` by gRPC method counts every request message etcd received,
 * including each keepalive sent on a long-lived LeaseKeepAlive stream (where
 * `grpc_server_handled_total` would count only whole streams). Also a few etcd counters that say
 * what the requests did (mvcc puts/ranges/txns, lease renewals).
 */
export type Counters = Map<string, number>;

const WANTED = [
  'etcd_debugging_mvcc_put_total',
  'etcd_debugging_mvcc_range_total',
  'etcd_debugging_mvcc_txn_total',
  'etcd_debugging_mvcc_delete_total',
  'etcd_debugging_lease_renewed_total',
  'etcd_debugging_lease_granted_total',
  'etcd_server_proposals_committed_total',
];

export async function scrape(endpoint: string): Promise<Counters> {
  const res = await fetch(`${endpoint}/metrics`);
  if (!res.ok) throw new Error(`etcd /metrics: HTTP ${res.status}`);
  const text = await res.text();
  const out: Counters = new Map();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const m =
      /^grpc_server_msg_received_total\{[^}]*grpc_method="([^"]+)",grpc_service="([^"]+)"[^}]*\} (\S+)$/.exec(
        line,
      );
    if (m) {
      if (m[2] === 'grpc.health.v1.Health') continue;
      out.set(`rpc ${m[1]!}`, Number(m[3]));
      continue;
    }
    const sp = line.lastIndexOf(' ');
    const name = line.slice(0, sp);
    if (WANTED.includes(name)) out.set(name, Number(line.slice(sp + 1)));
  }
  return out;
}

/** after − before, non-zero entries only. */
export function diff(before: Counters, after: Counters): Counters {
  const out: Counters = new Map();
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d !== 0) out.set(k, d);
  }
  return out;
}
