/** The reboot lock against the embedded store (the same suite runs against etcd in integration). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { EmbeddedKvStore } from '../../../src/registry/embedded/index.js';
import { lockContract } from '../../support/lock-contract.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

lockContract('embedded', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-lock-'));
  dirs.push(dir);
  return EmbeddedKvStore.open({ dataDir: dir });
});
