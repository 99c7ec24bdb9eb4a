import { defineConfig } from 'vitest/config';

// Two suites: `unit` (pure logic, fakes allowed) and `integration` (real etcd, systemd, Docker
// from the test environment in test/env). Integration files share machines and daemons, so they
// run one file at a time.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          setupFiles: ['test/support/settled.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          setupFiles: ['test/support/settled.ts'],
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
