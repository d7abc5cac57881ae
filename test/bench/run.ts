/**
 * `npm run bench`: runs each benchmark as its own process, one after the other (they would skew each
 * other on two cores), and prints their JSON result lines, then a one-line summary of the targets.
 */

import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const BENCHES = ['parse.ts', 'journal.ts', 'agent.ts', 'storm.ts', 'api-load.ts'];

interface Result {
  bench: string;
  met?: boolean;
}

function run(file: string): Promise<Result[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, file)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      process.stdout.write(chunk);
    });
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) reject(new Error(`${file} exited with ${code}`));
      else
        resolve(
          out
            .split('\n')
            .filter((line) => line.startsWith('{'))
            .map((line) => JSON.parse(line) as Result),
        );
    });
  });
}

const results: Result[] = [];
for (const file of process.argv.slice(2).length > 0 ? process.argv.slice(2) : BENCHES) {
  results.push(...(await run(file)));
}
const missed = results.filter((result) => result.met === false).map((result) => result.bench);
process.stdout.write(
  `${JSON.stringify({ bench: 'summary', results: results.length, targetsMissed: missed })}\n`,
);
