/**
 * The process logger: pino, one JSON line per event, always on stderr. In stdio mode stdout
 * carries only MCP messages, so nothing in the server may ever log to stdout.
 */
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof logLevels)[number];

export function createLogger(level: LogLevel = 'info'): Logger {
  // fd 2 synchronously: a crash right after a log line must not lose it.
  return pino({ level, base: { pid: process.pid }, name: 'ioboxx-memory' }, pino.destination({ dest: 2, sync: true }));
}

/** A logger that drops everything (tests and library use without a process). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
