// Helm for the chart tests, built from its Go module (go.mod here pins helm.sh/helm/v4) the way
// test/testenv/cli.ts builds the control plane: cached under
// ${XDG_CACHE_HOME:-~/.cache}/kube-iptables-tailer/helm-<hash of this module and the build flags>.
//   node test/helm/build.ts      build (or find the cached binary), print its path (test/charts runs it)

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const moduleDir = dirname(fileURLToPath(import.meta.url));

/** The helm.sh/helm/v4 version go.mod requires, which `helm version` then reports. */
function helmVersion(): string {
  const match = /^\s*helm\.sh\/helm\/v4 (v\S+)/m.exec(readFileSync(join(moduleDir, 'go.mod'), 'utf8'));
  if (!match?.[1]) throw new Error(`no helm.sh/helm/v4 requirement in ${moduleDir}/go.mod`);
  return match[1];
}

function tail(path: string, lines = 25): string {
  return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

/** Path of a helm binary built from test/helm; builds it (minutes, once) when the cache has none. */
function buildHelm(): string {
  const goArgs = [
    'build',
    '-mod=readonly',
    '-buildvcs=false',
    '-trimpath',
    `-ldflags=-s -w -X helm.sh/helm/v4/internal/version.version=${helmVersion()}`,
  ];
  const hash = createHash('sha256');
  for (const file of ['go.mod', 'go.sum']) hash.update(readFileSync(join(moduleDir, file)));
  hash.update(JSON.stringify([goArgs, process.platform, process.arch]));
  const cacheRoot = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kube-iptables-tailer');
  const dir = join(cacheRoot, `helm-${hash.digest('hex').slice(0, 16)}`);
  const helm = join(dir, 'helm');
  if (existsSync(helm)) return helm;

  mkdirSync(cacheRoot, { recursive: true });
  // Built aside and renamed, so an interrupted or concurrent build never leaves a half-filled cache entry.
  const tmp = `${dir}.tmp-${process.pid}`;
  const buildLog = `${dir}.build.log`;
  process.stderr.write(`helm: building into ${dir} (the first build takes minutes; log: ${buildLog})\n`);
  const fd = openSync(buildLog, 'w');
  const started = Date.now();
  const result = spawnSync('go', [...goArgs, '-o', `${tmp}/`, 'helm.sh/helm/v4/cmd/helm'], {
    cwd: moduleDir,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  if (result.error || result.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(
      `helm build failed (${result.error?.message ?? `go exited ${result.status}`}); log: ${buildLog}\n${tail(buildLog)}`,
    );
  }
  try {
    renameSync(tmp, dir);
  } catch {
    // Another build finished first with identical inputs; keep its result.
    rmSync(tmp, { recursive: true, force: true });
  }
  process.stderr.write(`helm: built in ${Math.round((Date.now() - started) / 1000)} s\n`);
  return helm;
}

process.stdout.write(`${buildHelm()}\n`);
