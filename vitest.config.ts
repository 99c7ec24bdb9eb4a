import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// Two suites: `unit` (pure logic, fakes allowed) and `integration` (real etcd, systemd, Docker
// from the test environment in test/env). Integration files share machines and daemons, so they
// run one file at a time, after the unit files (groupOrder), as they always did.
//
// Workers: vitest's default outside watch mode is one fewer than the CPUs, which is a single worker
// on the 2-core machines CI and the test environment run on; the unit files then ran one at a time
// (162 s here, against 88 s with 2 workers and 72 s with 3). The unit suite gets one worker per CPU.
const cpus = availableParallelism();
export default defineConfig({
  test: {
    maxWorkers: Math.max(2, cpus),
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          setupFiles: ['test/support/settled.ts'],
          maxWorkers: Math.max(2, cpus),
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          setupFiles: ['test/support/settled.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
