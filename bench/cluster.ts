/**
 * `npm run bench -- cluster [--skip-real] [--skip-scale] [--runs N] [--units N] [--machines N] …`
 *
 * The cluster issue's benchmark, fleet's figures beside ours (fleet.md: machine TTL 30 s, failover
 * 17–35 s, stated limit 100 machines / 1,000 units):
 *   1.–2., 4. on 3 real systemd-nspawn machines (bench/cluster-real.ts): failover from power cut to
 *      active elsewhere over N runs, 1,000 units started, the idle agent's RSS and CPU;
 *   3. scale: simulated machines and units in one process against a real etcd (bench/cluster-scale.ts).
 * Arguments are passed to both parts (each ignores what it does not know).
 */
import { REAL_CLUSTER_HEADER, realClusterBench } from './cluster-real.js';
import { scaleBench } from './cluster-scale.js';
import { printTable } from './table.js';

export default async function bench(args: string[]): Promise<void> {
  const rest = args.filter((a) => a !== '--skip-real' && a !== '--skip-scale');
  if (!args.includes('--skip-real')) {
    printTable(
      'Cluster on real machines: 3 systemd-nspawn machines (systemd 252), an etcd member in each, agent_ttl=3s',
      REAL_CLUSTER_HEADER,
      await realClusterBench(rest),
    );
  }
  if (!args.includes('--skip-scale')) {
    printTable(
      'Cluster scale: simulated machines and units in one process, real single-member etcd',
      ['metric', 'flotilla', 'target', 'fleet', 'result'],
      await scaleBench(rest),
    );
  }
}
