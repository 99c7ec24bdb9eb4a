/**
 * `npm run bench -- docker [--skip-units] [--skip-proxy] [--units-… …] [--proxy-… …]`
 *
 * The Docker issue's benchmark, in two parts, each printing its own table:
 *   1. container units (bench/docker-units.ts, when present): its default export runs it;
 *   2. the service proxy (bench/docker-proxy.ts): throughput and latency against a direct connection,
 *      and reroute time after an endpoint disappears from the registry.
 * Options of a part are given with its prefix: `--proxy-rounds 5 --proxy-seconds 3`.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import proxyBench from './docker-proxy.js';

const here = dirname(fileURLToPath(import.meta.url));

/** The options meant for one part: `--<part>-x v` → `--x v` (same rule as bench/cluster.ts). */
function optionsFor(args: string[], part: 'units' | 'proxy'): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith(`--${part}-`)) continue;
    out.push(`--${a.slice(part.length + 3)}`);
    const v = args[i + 1];
    if (v !== undefined && !v.startsWith('--')) {
      out.push(v);
      i++;
    }
  }
  return out;
}

export default async function bench(args: string[]): Promise<void> {
  const units = join(here, 'docker-units.ts');
  if (!args.includes('--skip-units') && existsSync(units)) {
    const mod = (await import(pathToFileURL(units).href)) as { default: (a: string[]) => Promise<void> };
    await mod.default(optionsFor(args, 'units'));
  }
  if (!args.includes('--skip-proxy')) await proxyBench(optionsFor(args, 'proxy'));
}
