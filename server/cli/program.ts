/**
 * The `ioboxx-memory` command line: `serve --stdio | --http` here; store, tenants, backup
 * and audit commands from their owners' files. Every command has --help.
 */
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, readFile } from 'node:fs/promises';
import { Command, Option, type CommanderError } from 'commander';
import { ConfigError, redactedConfig, type Config } from '../config.js';
import { createLogger, logProcessWarnings } from '../log.js';
import { configWithFile } from '../config-file.js';
import type { HttpProcess } from '../main-wiring.js';
import { openFilesProblem, openFilesSoftLimit } from '../ops/open-files-limit.js';
import { exitCodeTimedOut, installGracefulShutdown } from '../ops/shutdown.js';
import { listenFailureText } from './listen-failure.js';
import { effectiveLoadLimits } from '../ops/load-protection.js';
import { storesMemoryBytesMaxOfMachine } from '../tenants/stores-memory-budget.js';
import { MemoryError } from '../../storage/errors.js';
import { registerAuditCommands } from './audit-commands.js';
import { registerBackupCommands } from './backup-commands.js';
import { registerStoreCommands } from './store-commands.js';
import { registerTenantCommands } from './tenant-commands.js';
import { operatorDataDir } from './cli-data-dir.js';
import { dataDirRole, directoryFilesystemVerdict } from './directory-filesystem.js';
import { failCommand } from './command-output.js';

const environmentHelp = `
Environment (see README):
  IOBOXX_DATA_DIR          data directory (default ./data); tenant stores live in DATA/tenants/ID
  IOBOXX_HTTP_HOST         HTTP bind address (default 127.0.0.1)
  IOBOXX_HTTP_PORT         HTTP port (default 8787)
  IOBOXX_ALLOWED_ORIGINS   extra browser origins allowed to call the HTTP server (comma list)
  IOBOXX_LOG_LEVEL         fatal|error|warn|info|debug|trace|silent (default info); logs go to stderr
  IOBOXX_OIDC_ISSUER       set to serve verified Keycloak tokens; unset = local mode (one tenant "local")
  IOBOXX_TOKEN             stdio in token mode: the access token`;

interface ServeOptions {
  readonly stdio?: boolean;
  readonly http?: boolean;
  readonly dataDir?: string;
  readonly printConfig?: boolean;
  readonly config?: string;
}

function configFor(options: ServeOptions): Config {
  return configWithFile({ configFile: options.config, dataDir: options.dataDir });
}

async function serve(options: ServeOptions): Promise<void> {
  let config: Config;
  try {
    config = configFor(options);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`ioboxx-memory: ${error.message}\n`);
    process.exitCode = 2;
    return;
  }
  // As the process runs with it: the defaults derived at start filled in, so an operator reads the bounds in force.
  const effective = redactedConfig(effectiveConfig(config, options.http === true));
  if (options.printConfig === true) {
    process.stderr.write(`${JSON.stringify(effective, null, 2)}\n`);
  }
  const log = createLogger(config.logLevel);
  logProcessWarnings(log);
  // What this process runs with, secrets redacted: the first line an operator reads.
  log.info({ config: effective }, 'configuration');
  // Before the mkdir below: on procfs it would never return, and a store on tmpfs is not durable.
  const filesystem = await directoryFilesystemVerdict(config.dataDir, dataDirRole);
  if (filesystem !== undefined && 'refused' in filesystem) {
    log.fatal({ dataDir: config.dataDir }, filesystem.refused);
    process.stderr.write(`ioboxx-memory: ${filesystem.refused}\n`);
    process.exitCode = 2; // a setting to change, as an invalid configuration
    return;
  }
  if (filesystem !== undefined) log.warn({ dataDir: config.dataDir }, filesystem.notDurable);
  // A data directory the process cannot use fails the start, not every call after it.
  const unusable = await dataDirProblem(config.dataDir);
  if (unusable !== undefined) {
    log.fatal({ dataDir: config.dataDir }, unusable);
    process.stderr.write(`ioboxx-memory: ${unusable}\n`);
    process.exitCode = 1;
    return;
  }
  if (options.stdio !== true) {
    // Many open stores under a low `ulimit -n` fail the start, not calls (and accepts) under load.
    const tooFewFiles = openFilesProblem(config, openFilesSoftLimit(await readFile('/proc/self/limits', 'utf8').catch(() => '')));
    if (tooFewFiles !== undefined) {
      log.fatal({ mode: config.mode, maxOpenTenants: config.maxOpenTenants }, tooFewFiles);
      process.stderr.write(`ioboxx-memory: ${tooFewFiles}\n`);
      process.exitCode = 1;
      return;
    }
  }
  // Imported here so `--help` and the store commands never load the whole memory module.
  const wiring = await import('../main-wiring.js');
  if (options.stdio === true) {
    try {
      const ended = await wiring.serveStdioProcess(config, log);
      // As the HTTP shutdown: work cut short by the bound is a failed end, whatever closed cleanly after it.
      if (ended.shutdownBoundPassed) process.exitCode = exitCodeTimedOut;
    } catch (error) {
      // Past the answered calls (closing the store on a full disk, say): said as what it is.
      log.fatal({ err: error }, 'stdio serving ended with an error');
      process.exitCode = 1;
    }
    return;
  }
  // SIGTERM/SIGINT: stop accepting, let admitted calls finish, close every store (final
  // fdatasync + checkpoint), exit 0 within the bound; a second signal exits at once
  // (acknowledged work is already durable). Installed before the listener opens: a Ctrl-C
  // right after "http server listening" found Node's default handler and ended the process
  // with no shutdown at all; now it waits for the start to finish, then shuts down.
  let started: (running: HttpProcess) => void = () => undefined;
  let failed: (error: unknown) => void = () => undefined;
  const starting = new Promise<HttpProcess>((resolve, reject) => ((started = resolve), (failed = reject)));
  starting.catch(() => undefined); // the start's own error is thrown below; a shutdown says it again
  installGracefulShutdown({
    boundMs: config.shutdownMs,
    stopAccepting: async () => (await starting).stopAccepting(),
    drain: async () => (await starting).drained(),
    close: async () => (await starting).close(),
    log: (message, fields) => log.info(fields ?? {}, message),
  });
  try {
    started(await wiring.serveHttpProcess(config, log));
  } catch (error) {
    failed(error);
    const why = listenFailureText(error, config.http.host, config.http.port);
    if (why === undefined) throw error;
    log.fatal({ host: config.http.host, port: config.http.port }, why);
    process.stderr.write(`ioboxx-memory: ${why}\n`);
    // What the start opened before the listener (the control plane) would keep the process alive.
    process.exit(1);
  }
}

/**
 * The configuration with what is derived at start: a lone tenant's bound (load-protection.ts)
 * and, for HTTP, the open stores' memory budget of this machine (main-wiring.ts takes the same).
 */
function effectiveConfig(config: Config, http: boolean): Config {
  const budget = http && config.storesMemoryBytesMax === undefined ? { storesMemoryBytesMax: storesMemoryBytesMaxOfMachine() } : {};
  return { ...config, loadLimits: effectiveLoadLimits(config.loadLimits), ...budget };
}

/** Why the data directory cannot be used (created if missing, then readable and writable), or undefined. */
async function dataDirProblem(dataDir: string): Promise<string | undefined> {
  try {
    await mkdir(dataDir, { recursive: true });
    await access(dataDir, fsConstants.R_OK | fsConstants.W_OK);
    return undefined;
  } catch (error) {
    return `the data directory ${dataDir} cannot be used: ${(error as Error).message}`;
  }
}

/**
 * Exit codes: 0 ok (--help too), 1 the command failed, 2 usage (commander's unknown option or
 * command, missing or extra argument: all its exit code 1) or an invalid configuration, 3 damaged store. Set before the
 * commands are added, so every command and subcommand inherits it. With --json among the
 * arguments a usage error is one object on stdout too, as every failure of a command is
 * (commander has said it on stderr already).
 */
function exitForUsage(error: CommanderError): never {
  const usage = error.exitCode === 1;
  if (usage && process.argv.slice(2).includes('--json')) {
    process.stdout.write(`${JSON.stringify({ ok: false, code: 'usage', message: error.message.replace(/^error: /, '') })}\n`);
  }
  process.exit(usage ? 2 : error.exitCode);
}

export function buildProgram(): Command {
  const program = new Command('ioboxx-memory')
    .description("MCP server giving agents a tenant's durable working memory")
    .showHelpAfterError()
    .exitOverride(exitForUsage);

  program
    .command('serve')
    .description('serve MCP over stdio (for a desktop client) or HTTP (/mcp Streamable HTTP, /sse legacy SSE)')
    .addOption(new Option('--stdio', 'speak MCP on stdin/stdout (logs on stderr)').conflicts('http'))
    .addOption(new Option('--http', 'listen on IOBOXX_HTTP_HOST:IOBOXX_HTTP_PORT').conflicts('stdio'))
    .option('--data-dir <dir>', 'data directory (overrides IOBOXX_DATA_DIR)')
    .option('--config <file>', 'JSON file of settings by environment name (IOBOXX_CONFIG_FILE); the environment wins')
    .option('--print-config', 'print the effective configuration (secrets redacted) to stderr first')
    .addHelpText('after', environmentHelp)
    .action(async (options: ServeOptions, command: Command) => {
      if (options.stdio !== true && options.http !== true) command.error('choose a transport: --stdio or --http');
      await serve(options);
    });

  // Every other command that takes --data-dir: a pseudo filesystem is refused before the command
  // makes anything there (restore's mkdir never returned on /proc). A bad configuration is left
  // to the command, which says it as it does.
  program.hook('preAction', async (_program, command) => {
    if (command.name() === 'serve' || !command.options.some((option) => option.long === '--data-dir')) return;
    const options = command.opts<{ dataDir?: string; json?: boolean }>();
    let dataDir: string;
    try {
      dataDir = operatorDataDir(options.dataDir);
    } catch {
      return;
    }
    const filesystem = await directoryFilesystemVerdict(dataDir, dataDirRole);
    if (filesystem !== undefined && 'refused' in filesystem) failCommand(new MemoryError('invalid_argument', filesystem.refused), options.json === true);
    // restore writes a store there, as serve does: the same warning.
    if (filesystem !== undefined && 'notDurable' in filesystem && command.name() === 'restore') process.stderr.write(`warning: ${filesystem.notDurable}\n`);
  });

  registerStoreCommands(program);
  registerTenantCommands(program);
  registerBackupCommands(program);
  registerAuditCommands(program);
  return program;
}
