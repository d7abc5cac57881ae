// The image test builds the real Dockerfile with buildah (minutes, root, network for npm and apt), so it
// has its own entry point, `npm run test:image`, and stays out of the default `vitest run`.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: ['test/image/**/*.itest.ts'],
    testTimeout: 120_000,
    // Building measured about 2 min cold (base image and npm cache empty) and under 1 min warm; the
    // limit is there to stop a hung npm or apt long before CI's own time limit.
    hookTimeout: 20 * 60_000,
    fileParallelism: false,
  },
});
