/** How operator commands report: a JSON object on stdout with --json, else lines; errors on stderr with a hint and an exit code. */
export function printReport(json: boolean, value: unknown, lines: () => string[]): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${lines().join('\n')}\n`);
}

/**
 * Exit codes: 1 failed, 2 an invalid configuration (a setting to change: serve's code for it),
 * 3 damaged store or backup (see the message, or `file` and `position` in JSON, for where).
 */
export function failCommand(error: unknown, json = false): never {
  const e = error as Error & { code?: string; hint?: string; file?: string; position?: number };
  const damaged = e.code === 'damaged_store' || e.code === 'backup_invalid';
  const misconfigured = e.code === 'invalid_config';
  if (json) {
    const where = { ...(e.file ? { file: e.file } : {}), ...(e.position !== undefined ? { position: e.position } : {}) };
    process.stdout.write(`${JSON.stringify({ ok: false, code: e.code ?? 'error', message: e.message, ...where, ...(e.hint ? { hint: e.hint } : {}) })}\n`);
  }
  // A damaged store's message already ends with its hint: not printed twice.
  const hint = e.hint && !e.message.endsWith(e.hint) ? `\n  ${e.hint}` : '';
  process.stderr.write(`error: ${e.message}${hint}\n`);
  process.exit(damaged ? 3 : misconfigured ? 2 : 1);
}
