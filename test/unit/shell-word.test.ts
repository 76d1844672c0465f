/** storage/shell-word.ts: a path in a hint, pasted into a POSIX shell as printed, is that path as one argument. */
import { execFileSync } from 'node:child_process';
import { expect, test } from 'vitest';
import { removeCommand } from '../../storage/backup/scratch-dir.js';
import { shellWord } from '../../storage/shell-word.js';

const pathsOfEveryKind = ['/srv/data', 'data/tenants/acme', "/tmp/it's a store", '/tmp/a b', '/tmp/$HOME `x` "q" \\ ;&|*?', '-starts-with-dash', '/tmp/tab\there', 'tenant@host:1+2'];

/** What `sh` makes of `printf '%s\n' WORD` pasted as printed. */
const pastedAsOneArgument = (word: string): string => execFileSync('sh', ['-c', `printf '%s\\n' ${word}`], { encoding: 'utf8' }).slice(0, -1);

test('a path pasted into sh as printed is that one path, with nothing expanded', () => {
  for (const p of pathsOfEveryKind) {
    const expected = p.startsWith('-') ? `./${p}` : p;
    expect(pastedAsOneArgument(shellWord(p)), p).toBe(expected);
  }
});

test('a path with nothing special is printed as it is; others are quoted', () => {
  expect(shellWord('/srv/data')).toBe('/srv/data');
  expect(shellWord('data/tenants/acme')).toBe('data/tenants/acme');
  expect(shellWord('/tmp/a b')).toBe("'/tmp/a b'");
  expect(shellWord("/tmp/it's")).toBe("'/tmp/it'\\''s'");
});

test('the removal a hint names removes exactly the directory given', () => {
  for (const p of ['/tmp/x y', "/tmp/it's"]) expect(removeCommand(p)).toBe(`rm -rf -- ${shellWord(p)}`);
  expect(removeCommand('/tmp/plain.partial-12')).toBe('rm -rf -- /tmp/plain.partial-12');
});
