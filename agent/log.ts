import { pino } from 'pino';
import type { LogLevel } from './config.ts';

export type Logger = pino.Logger;

/** JSON logs on stderr, so stdout stays free for the CLI's machine-readable output. */
export function createLogger(level: LogLevel = 'info'): Logger {
  return pino({ level, base: { component: 'kube-iptables-tailer' } }, pino.destination(2));
}
