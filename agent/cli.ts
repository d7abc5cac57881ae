import { readFileSync } from 'node:fs';
import { UsageError } from './commands/args.ts';
import { ConfigError } from './config.ts';
import { createLogger } from './log.ts';

const COMMANDS: Record<string, () => Promise<{ main(argv: string[]): Promise<number> }>> = {
  doctor: () => import('./commands/doctor.ts'),
  parse: () => import('./commands/parse.ts'),
  replay: () => import('./commands/replay.ts'),
  run: () => import('./commands/run.ts'),
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

const USAGE = `usage: kube-iptables-tailer [run | doctor | parse | replay | --version] [options]
  run                                  the node agent, configured by environment variables (default)
  doctor [--json]                      check the same configuration: log source, prefix, API access,
                                       permissions and pod index; exit 1 when events would be blocked
  parse [--prefix P] [--journal DIR] [--stats] [FILE...]
                                       print one JSON object per packet drop
  replay --pods PODS.json [--prefix P] [--output json|text] [FILE...]
                                       run the pipeline offline and print the resulting Events`;

/**
 * The agent logs JSON, so its failure is one JSON line too, naming what to fix; an unexpected error carries
 * its stack as a field, never as raw text on stderr. Logged whatever LOG_LEVEL says: it is the last word.
 */
function reportRunFailure(err: unknown): number {
  const log = createLogger('info');
  if (err instanceof ConfigError || err instanceof UsageError) {
    const problems = err instanceof ConfigError ? err.problems : [err.message];
    log.fatal({ problems }, `cannot start: ${problems.join('; ')}`);
    return 2;
  }
  log.fatal({ err }, `stopped by an unexpected error: ${err instanceof Error ? err.message : String(err)}`);
  return 1;
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--version' || first === 'version') {
    process.stdout.write(`kube-iptables-tailer ${version()}\n`);
    return 0;
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const name = first === undefined || first.startsWith('-') ? 'run' : first;
  const load = COMMANDS[name];
  if (load === undefined) {
    process.stderr.write(`unknown command ${JSON.stringify(name)}\n${USAGE}\n`);
    return 2;
  }
  const args = name === first ? rest : argv;
  try {
    return await (await load()).main(args);
  } catch (err) {
    if (name === 'run') return reportRunFailure(err);
    if (err instanceof ConfigError || err instanceof UsageError) {
      process.stderr.write(`kube-iptables-tailer: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

process.exitCode = await main(process.argv.slice(2));
