/**
 * A real tenant memory (real Store on a temp directory, real vector index) and a way to
 * call its tools the way the server does: by name, with raw JSON arguments.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect } from 'vitest';
import type { Caller } from '../../storage/changes.js';
import { MemoryError } from '../../storage/errors.js';
import { memoryTools, openTenantMemory, type TenantMemoryOptions } from '../../tools/index.js';
import type { TenantMemory } from '../../tools/memory.js';

export const alice: Caller = { tenant: 'acme', subject: 'alice' };
export const bob: Caller = { tenant: 'acme', subject: 'bob' };

export interface Fixture {
  readonly dir: string;
  memory: TenantMemory;
  call<T = Record<string, any>>(tool: string, args: unknown, caller?: Caller): Promise<T>;
  /** Close and reopen the same directory (recovery from snapshot + log). */
  reopen(): Promise<void>;
  /** Store offset and state hash: equal before and after means nothing was written. */
  mark(): { offset: number; hash: string };
  close(): Promise<void>;
}

export async function openFixture(options: TenantMemoryOptions = {}): Promise<Fixture> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-tools-'));
  const fixture: Fixture = {
    dir,
    memory: await openTenantMemory(dir, 'acme', options),
    async call(tool, args, caller = alice) {
      const def = memoryTools.find((t) => t.name === tool);
      if (!def) throw new Error(`no tool ${tool}`);
      return (await def.call({ memory: fixture.memory, caller }, args as never)) as never;
    },
    async reopen() {
      await fixture.memory.close();
      fixture.memory = await openTenantMemory(dir, 'acme', options);
    },
    mark() {
      return { offset: fixture.memory.store.lastOffset, hash: fixture.memory.store.stateHash() };
    },
    async close() {
      await fixture.memory.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return fixture;
}

/** A tool call's outcome: its result, or the MemoryError it failed with as its code and message. */
export type Outcome = { ok: true; value: Record<string, any> } | { ok: false; code: string; message: string };

/**
 * The call as a client's tools/call reaches the tool: JSON arguments, and the result as the
 * server sends it (checked against the tool's outputSchema, which is what the client sees); an
 * error as its code.
 */
export async function attemptTool(f: Fixture, tool: string, args: unknown, caller: Caller = alice): Promise<Outcome> {
  let value: unknown;
  try {
    value = await f.call(tool, JSON.parse(JSON.stringify(args)), caller);
  } catch (e) {
    if (e instanceof MemoryError) return { ok: false, code: e.code, message: e.message };
    throw e;
  }
  const output = memoryTools.find((t) => t.name === tool)!.output.safeParse(value);
  expect(output.error, `${tool}: its result matches its outputSchema`).toBeUndefined();
  expect(output.data, `${tool}: nothing in its result is outside its outputSchema`).toEqual(value);
  return { ok: true, value: output.data as Record<string, any> };
}

/** The call fails with a MemoryError of this code, and the store is exactly as before. */
export async function expectRefused(f: Fixture, call: Promise<unknown>, code: string, message?: RegExp): Promise<MemoryError> {
  const before = f.mark();
  const error = await call.then(
    () => {
      throw new Error(`expected ${code}, but the call succeeded`);
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(MemoryError);
  expect((error as MemoryError).code).toBe(code);
  if (message) expect((error as MemoryError).message).toMatch(message);
  expect(f.mark()).toEqual(before);
  return error as MemoryError;
}
