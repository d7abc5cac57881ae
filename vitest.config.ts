import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/controlplane.ts'],
    testTimeout: 60_000,
    hookTimeout: 600_000,
  },
});
