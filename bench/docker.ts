/**
 * `npm run bench -- docker [--runs N] [--machine mK]`: the Docker benchmarks in one run —
 * container-unit start overhead (bench/docker-units.ts) and, when present, the discovery proxy
 * (bench/docker-proxy.ts). Each part prints its own table.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export default async function main(args: string[]): Promise<void> {
  for (const part of ['docker-units', 'docker-proxy']) {
    const file = join(here, `${part}.ts`);
    if (!existsSync(file)) continue;
    const mod = (await import(pathToFileURL(file).href)) as { default: (a: string[]) => Promise<void> };
    await mod.default(args);
  }
}
