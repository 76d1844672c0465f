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

/**
 * Process warnings (a deprecation, a dependency's notice such as the AWS SDK's Node-version
 * warning) as log lines. Node prints them as plain text, several lines each, on stderr between
 * the JSON lines, where a pipeline that reads the log as JSON lines trips over them. This
 * replaces Node's own printer for the rest of the process; every warning is still logged.
 */
export function logProcessWarnings(log: Logger): void {
  process.removeAllListeners('warning');
  process.on('warning', (warning: Error & { code?: string }) => {
    log.warn({ warning: { name: warning.name, message: warning.message, ...(warning.code !== undefined && { code: warning.code }) } }, 'process warning');
  });
}
