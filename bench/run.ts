/**
 * Benchmark entry: `npm run bench -- <name> [args…]` runs bench/<name>.ts, whose default export is
 * `async (args: string[]) => void` and prints its own table (bench/table.ts). With no name it lists
 * the benchmarks.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const names = readdirSync(here)
  // helpers other benches import, not benches themselves
  .filter((f) => f.endsWith('.ts') && !['run.ts', 'table.ts', 'stats.ts', 'bulk-trace.ts'].includes(f))
  .map((f) => f.slice(0, -3))
  .sort();

const [name, ...args] = process.argv.slice(2);
if (!name || !names.includes(name)) {
  console.error(`usage: npm run bench -- <${names.join('|')}> [args…]`);
  process.exit(name ? 64 : 0);
}
const mod = (await import(pathToFileURL(join(here, `${name}.ts`)).href)) as {
  default: (args: string[]) => Promise<void>;
};
await mod.default(args);
