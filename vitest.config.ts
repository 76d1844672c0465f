import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One temporary directory per run, removed at its end (test/support/tmp-root.ts).
    globalSetup: ['test/support/tmp-root.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores: crash and service suites spawn processes of their own.
    maxWorkers: 2,
  },
});
