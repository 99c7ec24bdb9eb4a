/**
 * The import graph of src/ (relative imports of .ts files, static and dynamic `import()`), for the
 * layout test (test/unit/layout.test.ts): cycles between modules and arrows between folders.
 * `typeOnly` marks an edge whose every import is `import type` / `export type` (erased at runtime).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

export interface Edge {
  from: string;
  to: string;
  typeOnly: boolean;
}

function walk(dir: string, out: string[] = []): string[] {
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const IMPORT =
  /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

/** Every module of `srcDir` (paths relative to it, e.g. "agent/agent.ts") and its edges. */
export function importGraph(srcDir: string): { modules: string[]; edges: Edge[] } {
  const root = resolve(srcDir);
  const files = walk(root);
  const edges = new Map<string, Edge>();
  for (const file of files) {
    const from = relative(root, file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[3] ?? m[4]!;
      const typeOnly = m[4] === undefined && m[2] !== undefined;
      const to = relative(root, resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      const key = `${from}→${to}`;
      const prev = edges.get(key);
      edges.set(key, { from, to, typeOnly: prev ? prev.typeOnly && typeOnly : typeOnly });
    }
  }
  return { modules: files.map((f) => relative(root, f)), edges: [...edges.values()] };
}

/** Strongly connected components with more than one module (Tarjan), over the given edges. */
export function cycles(edges: readonly Edge[]): string[][] {
  const adj = new Map<string, string[]>();
  for (const e of edges) adj.set(e.from, [...(adj.get(e.from) ?? []), e.to]);
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of adj.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of adj.keys()) if (!idx.has(v)) visit(v);
  return out;
}

/** The folder of a module ("agent/agent.ts" → "agent"; "version.ts" → "."). */
export function folderOf(module: string): string {
  const i = module.indexOf('/');
  return i < 0 ? '.' : module.slice(0, i);
}
