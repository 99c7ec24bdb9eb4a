/**
 * `npm run bench -- docker [--runs N] [--machine mK] [--proxy-… …] [--skip-units] [--skip-proxy]`:
 * the Docker benchmarks in one run, each part printing its own table:
 *   1. container-unit start overhead (bench/docker-units.ts, when present): gets every option that is
 *      not a `--proxy-…` or `--skip-…` one;
 *   2. the discovery proxy (bench/docker-proxy.ts, when present): throughput and latency against a
 *      direct connection, reroute time; gets the `--proxy-…` options without the prefix
 *      (`--proxy-rounds 5` → `--rounds 5`).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** Split `args` into the proxy part's options (prefix removed) and everything else. */
export function splitArgs(args: string[]): { units: string[]; proxy: string[] } {
  const units: string[] = [];
  const proxy: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const v = args[i + 1];
    const takesValue = v !== undefined && !v.startsWith('--');
    if (a.startsWith('--proxy-')) {
      proxy.push(`--${a.slice('--proxy-'.length)}`);
      if (takesValue) proxy.push(args[++i]!);
    } else if (!a.startsWith('--skip-')) {
      units.push(a);
    }
  }
  return { units, proxy };
}

export default async function main(args: string[]): Promise<void> {
  const { units, proxy } = splitArgs(args);
  const parts: [string, string[]][] = [
    ['units', units],
    ['proxy', proxy],
  ];
  for (const [part, partArgs] of parts) {
    if (args.includes(`--skip-${part}`)) continue;
    const file = join(here, `docker-${part}.ts`);
    if (!existsSync(file)) continue;
    const mod = (await import(pathToFileURL(file).href)) as { default: (a: string[]) => Promise<void> };
    await mod.default(partArgs);
  }
}
