// The layout the README's Development section describes, checked over the real import graph of agent/:
// a stage imports the ground floor and earlier stages only, the live path never imports the offline
// tools or the CLI, and no files import each other in a circle.

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const AGENT = resolve(dirname(fileURLToPath(import.meta.url)), '../../agent');

/** Rooms in the order drops flow through them; a room may import its own and lower ranks only. */
const RANKS: readonly { room: string; rank: number }[] = [
  { room: 'ground', rank: 0 },
  { room: 'kube', rank: 1 },
  { room: 'sources', rank: 2 },
  { room: 'parser', rank: 3 },
  { room: 'filters', rank: 4 },
  { room: 'locator', rank: 5 },
  { room: 'pipeline', rank: 6 },
  { room: 'events', rank: 7 },
  // Beside the flow: health and metrics serving reads only the ground floor.
  { room: 'server', rank: 1 },
  { room: 'tools', rank: 8 },
  { room: 'commands', rank: 9 },
  { room: 'cli', rank: 10 },
];

const GROUND = new Set([
  'types.ts',
  'net.ts',
  'lines.ts',
  'config.ts',
  'log.ts',
  'metrics.ts',
  'rate-limit.ts',
  'clock.ts',
  'backoff.ts',
  'lru.ts',
  'flow.ts',
  'prefix-template.ts',
]);

/** The room of a file under agent/, or undefined for a file the layout does not place. */
function roomOf(path: string): string | undefined {
  const [top, ...rest] = path.split('/');
  if (rest.length > 0)
    return ['kube', 'sources', 'parser', 'filters', 'locator', 'events', 'tools', 'commands'].find(
      (room) => room === top,
    );
  if (GROUND.has(path)) return 'ground';
  return { 'pipeline.ts': 'pipeline', 'server.ts': 'server', 'cli.ts': 'cli' }[path];
}

function rankOf(room: string): number {
  return RANKS.find((r) => r.room === room)!.rank;
}

/** Whether `from` may import `to`, both paths relative to agent/. */
function allowed(from: string, to: string): boolean {
  const a = roomOf(from);
  const b = roomOf(to);
  if (a === undefined || b === undefined) return false;
  if (a === b) return true;
  // Server sits beside the pipeline: nothing on the live path depends on it but the commands.
  if (b === 'server') return a === 'commands' || a === 'cli';
  if (b === 'tools') return a === 'commands' || a === 'cli';
  return rankOf(b) < rankOf(a) && !(a === 'server' && b !== 'ground');
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => relative(AGENT, join(entry.parentPath, entry.name)));
}

/** Relative imports of a file (static, dynamic and type-only), as paths relative to agent/. */
function importsOf(file: string, text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(/(?:from\s+|import\(\s*)'(\.{1,2}\/[^']+)'/g)) {
    found.push(relative(AGENT, resolve(AGENT, dirname(file), match[1]!)));
  }
  return found;
}

function graph(): Map<string, string[]> {
  const edges = new Map<string, string[]>();
  for (const file of sourceFiles(AGENT))
    edges.set(file, importsOf(file, readFileSync(join(AGENT, file), 'utf8')));
  return edges;
}

/** One circle of imports per strongly connected group of files, as a path that returns to its start. */
function circles(edges: ReadonlyMap<string, readonly string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    stack.push(file);
    for (const next of edges.get(file) ?? []) {
      if (state.get(next) === 'open') found.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of edges.keys()) if (!state.has(file)) visit(file);
  return found;
}

describe('layout of agent/', () => {
  const edges = graph();

  it('places every file in a room', () => {
    expect([...edges.keys()].filter((file) => roomOf(file) === undefined)).toEqual([]);
  });

  it('has no import against the flow', () => {
    const against = [...edges].flatMap(([file, targets]) =>
      targets.filter((target) => !allowed(file, target)).map((target) => `${file} -> ${target}`),
    );
    expect(against).toEqual([]);
  });

  it('has no circle of imports', () => {
    expect(circles(edges).map((circle) => circle.join(' -> '))).toEqual([]);
  });

  it('the check itself rejects a stage that imports a later one, the tools from the live path, and circles', () => {
    expect(allowed('parser/parse.ts', 'sources/source.ts')).toBe(true);
    expect(allowed('sources/file.ts', 'parser/parse.ts')).toBe(false);
    expect(allowed('pipeline.ts', 'events/combine.ts')).toBe(false);
    expect(allowed('events/writer.ts', 'kube/client.ts')).toBe(true);
    expect(allowed('locator/pod-watch.ts', 'tools/doctor/census.ts')).toBe(false);
    expect(allowed('server.ts', 'pipeline.ts')).toBe(false);
    expect(allowed('types.ts', 'kube/client.ts')).toBe(false);
    expect(allowed('commands/run.ts', 'server.ts')).toBe(true);
    expect(
      circles(
        new Map([
          ['a.ts', ['b.ts']],
          ['b.ts', ['c.ts']],
          ['c.ts', ['a.ts']],
        ]),
      ),
    ).toEqual([['a.ts', 'b.ts', 'c.ts', 'a.ts']]);
    expect(
      importsOf(
        'events/store.ts',
        "import type { X } from '../filters/expiry.ts';\nawait import('./api.ts')",
      ),
    ).toEqual(['filters/expiry.ts', 'events/api.ts']);
  });
});
