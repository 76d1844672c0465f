/**
 * Exit codes of the command line: a usage error (unknown option or command, missing or extra
 * argument, no command) is 2, apart from a command that ran and failed (1); --help is 0.
 */
import { describe, expect, test } from 'vitest';
import { cli } from './cli-process.js';

describe.concurrent('usage errors exit 2', () => {
  test.each([
    ['an unknown option', ['store', 'verify', '/tmp', '--bogus'], "unknown option '--bogus'"],
    ['a missing argument', ['store', 'verify'], "missing required argument 'dir'"],
    ['an extra argument', ['store', 'inspect', '/tmp', 'more'], 'too many arguments'],
    ['an unknown command', ['stor'], "unknown command 'stor'"],
    ['an unknown subcommand', ['store', 'verfy', '/tmp'], "unknown command 'verfy'"],
    ['a missing option value', ['tenants', 'list', '--data-dir'], "option '--data-dir <dir>' argument missing"],
    ['no command', [], 'Usage: ioboxx-memory'],
  ])('%s', async (_name, args, message) => {
    const r = await cli(args);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(message);
  });

  test.each([[['--help']], [['store', '--help']], [['store', 'verify', '--help']], [['help', 'store']]])('%j exits 0', async (args) => {
    const r = await cli(args);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Usage: ioboxx-memory');
  });
});
