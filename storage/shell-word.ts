/**
 * A path as one word of a POSIX shell command, for a hint the operator pastes: as it is when it
 * holds nothing the shell reads specially, else in single quotes (a quote inside closed, escaped
 * and reopened). A relative path starting with `-` gets `./`, so the command takes it for an
 * argument and not an option.
 */
export function shellWord(word: string): string {
  const safe = word.startsWith('-') ? `./${word}` : word;
  return /^[\w./:@+-]+$/.test(safe) ? safe : `'${safe.replaceAll("'", "'\\''")}'`;
}
