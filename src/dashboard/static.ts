/**
 * Static assets of the dashboard (built by `npm run build` into dist/ui): hashed files under
 * /ui/assets/ cached for a year, app routes answered with index.html. No path leaves the directory.
 */
import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { existsSync } from 'node:fs';

/** Where the built assets live: dist/ui next to the compiled code, or from the source tree. */
export function assetsDir(): string | undefined {
  for (const rel of ['../ui/', '../../dist/ui/']) {
    const p = new URL(rel, import.meta.url).pathname;
    if (existsSync(p)) return p;
  }
  return undefined;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.ico': 'image/x-icon',
};

export async function serveStatic(
  res: ServerResponse,
  path: string,
  sec: Record<string, string>,
): Promise<void> {
  const dir = assetsDir();
  if (!dir) {
    res.writeHead(503, { ...sec, 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('dashboard assets are not built (npm run build)\n');
    return;
  }
  const rel = normalize(decodeURIComponent(path)).replace(/^(\.\.(\/|$))+/, '');
  const isAsset = rel.startsWith('/assets/') && extname(rel) !== '';
  const file = isAsset ? join(dir, rel) : join(dir, 'index.html');
  if (!file.startsWith(dir)) {
    res.writeHead(404, sec);
    res.end();
    return;
  }
  try {
    const data = await readFile(file);
    res.writeHead(200, {
      ...sec,
      'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
      'Cache-Control': isAsset ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
    res.end(data);
  } catch {
    res.writeHead(404, { ...sec, 'Content-Type': 'text/plain' });
    res.end('not found\n');
  }
}
