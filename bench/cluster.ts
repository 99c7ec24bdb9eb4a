/**
 * `npm run bench -- cluster [--skip-real] [--skip-scale] [--real-… …] [--scale-… …]`
 *
 * The cluster issue's benchmark, fleet's figures beside ours (fleet.md: machine TTL 30 s, failover
 * 17–35 s, stated limit 100 machines / 1,000 units):
 *   1.–2., 4. on 3 real systemd-nspawn machines (bench/cluster-real.ts): failover from power cut to
 *      active elsewhere over N runs, 1,000 units started, the idle agent's RSS and CPU;
 *   3. scale: simulated machines and units in one process against a real etcd (bench/cluster-scale.ts).
 * Options of a part are given with its prefix: `--real-runs 10 --real-only failover`,
 * `--scale-machines 100 --scale-units 1000` (see bench/cluster-real.ts and bench/cluster-scale.ts).
 */
import { REAL_CLUSTER_HEADER, realClusterBench } from './cluster-real.js';
import { scaleBench } from './cluster-scale.js';
import { printTable } from './table.js';

/** The options meant for one part: `--<part>-x v` → `--x v`. */
export function partArgs(args: string[], part: 'real' | 'scale'): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith(`--${part}-`)) {
      out.push(`--${a.slice(part.length + 3)}`);
      const v = args[i + 1];
      if (v !== undefined && !v.startsWith('--')) {
        out.push(v);
        i++;
      }
    }
  }
  return out;
}

export default async function bench(args: string[]): Promise<void> {
  if (!args.includes('--skip-real')) {
    printTable(
      'Cluster on real machines: 3 systemd-nspawn machines (systemd 252), an etcd member in each, agent_ttl=3s',
      REAL_CLUSTER_HEADER,
      await realClusterBench(partArgs(args, 'real')),
    );
  }
  if (!args.includes('--skip-scale')) {
    printTable(
      'Cluster scale: simulated machines and units in one process, real single-member etcd',
      ['metric', 'flotilla', 'target', 'fleet', 'result'],
      await scaleBench(partArgs(args, 'scale')),
    );
  }
}
