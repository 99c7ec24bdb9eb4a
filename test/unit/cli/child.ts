/** Spawning the CLI (from source, through tsx) as a child process for tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const ENTRY = join(import.meta.dirname, 'cli-entry.ts');
/** tsx's loader by absolute URL, so the CLI can be started from any directory. */
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

export function spawnCli(args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, ['--import', TSX, ENTRY, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** An executable `name` in `dir` that runs the CLI from source (for shells and fake ssh). */
export function cliWrapper(dir: string, name: string): string {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\nexec '${process.execPath}' --import '${TSX}' '${ENTRY}' "$@"\n`);
  chmodSync(p, 0o755);
  return p;
}
