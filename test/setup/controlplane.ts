// vitest globalSetup: one real etcd + kube-apiserver for the whole run, through the
// same CLI as `npm run testenv -- up|down`. Set TESTENV_KEEP=1 to leave it running
// after the run, so the next run reuses it instead of starting a new one.

import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Absolute path of an admin (system:masters) kubeconfig. */
    kubeconfig: string;
    /** https://127.0.0.1:<port> */
    server: string;
  }
}

const cli = join(dirname(fileURLToPath(import.meta.url)), '../testenv/cli.ts');

function runCli(command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, command], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(stdout)
        : reject(new Error(`testenv ${command} exited ${code}; see its stderr above`)),
    );
  });
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const out = await runCli('up');
  const { kubeconfig, server } = JSON.parse(out.trim().split('\n').at(-1) ?? '') as {
    kubeconfig: string;
    server: string;
  };
  project.provide('kubeconfig', kubeconfig);
  project.provide('server', server);
  return async () => {
    if (process.env.TESTENV_KEEP !== '1') await runCli('down');
  };
}
