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

/** A write tool call as a model test plans it: its arguments, and what the model says it must do. */
export interface PlannedCall {
  readonly tool: string;
  readonly args: Record<string, unknown>;
  readonly caller: Caller;
  readonly key?: string | undefined;
  /** The error its arguments get before any idempotency key is looked up. */
  readonly early?: string | undefined;
  /** Asked when its turn comes (after the calls before it): the error it must fail with, or its result and how it changes the model. */
  plan(): { error: string } | { result: Record<string, unknown>; apply(result: Record<string, any>): void };
}

export function describeCall(c: PlannedCall): string {
  return `${c.tool} ${JSON.stringify(c.args).slice(0, 300)} by ${c.caller.subject}${c.key ? ` key ${c.key}` : ''}`;
}

/**
 * What every write model shares: the last offset, and the idempotency keys used so far (per
 * tool and caller) with their first call's arguments and result. For stores whose log still
 * holds every key's first call (one segment), so other arguments under a key are always
 * `conflict`.
 */
export class WriteLedger {
  private readonly keys = new Map<string, { args: string; result: Record<string, unknown> }>();
  /** Successful keyed calls, to retry. */
  readonly keyed: PlannedCall[] = [];
  constructor(public lastOffset: number) {}

  send(f: Fixture, c: PlannedCall): Promise<Outcome> {
    return attemptTool(f, c.tool, c.key === undefined ? c.args : { ...c.args, idempotency_key: c.key }, c.caller);
  }

  /** Checks a write's outcome against the model as it stands and applies it; its result when it wrote. */
  expectOutcome(c: PlannedCall, got: Outcome): Record<string, any> | undefined {
    const what = describeCall(c);
    if (c.early !== undefined) {
      expect(got, what).toMatchObject({ ok: false, code: c.early });
      return undefined;
    }
    const slot = `${c.tool}\u0000${c.caller.subject}\u0000${c.key}`;
    const prior = c.key === undefined ? undefined : this.keys.get(slot);
    if (prior) {
      if (prior.args === JSON.stringify(c.args)) expect(got, `${what}: a retry answers the first result`).toEqual({ ok: true, value: prior.result });
      else expect(got, `${what}: the key's first call had other arguments`).toMatchObject({ ok: false, code: 'conflict' });
      return undefined;
    }
    const planned = c.plan();
    if ('error' in planned) {
      expect(got, what).toMatchObject({ ok: false, code: planned.error });
      return undefined;
    }
    expect(got, what).toEqual({ ok: true, value: { ...planned.result, offset: expect.any(Number) } });
    const result = (got as { value: Record<string, any> }).value;
    expect(result['offset'], `${what}: its commit offset`).toBeGreaterThan(this.lastOffset);
    this.lastOffset = result['offset'];
    planned.apply(result);
    if (c.key !== undefined) {
      this.keys.set(slot, { args: JSON.stringify(c.args), result });
      this.keyed.push(c);
    }
    return result;
  }

  /** A keyed call made again: the same arguments, or other ones (`other`) under the same key. */
  retry(pick: number, alter: boolean, other: (tool: string, args: Record<string, any>) => Record<string, unknown>): PlannedCall | undefined {
    const first = this.keyed[pick % Math.max(1, this.keyed.length)];
    if (!first) return undefined;
    return { ...first, args: alter ? other(first.tool, first.args) : first.args, plan: () => { throw new Error('a key already used never runs its tool again'); } };
  }
}

/** Close and reopen (after a snapshot when asked): recovery gives the state hash the store closed with. */
export async function reopenChecked(f: Fixture, snapshot: boolean): Promise<void> {
  if (snapshot) await f.memory.store.snapshot();
  const hash = f.memory.store.stateHash();
  await f.reopen();
  expect(f.memory.store.stateHash(), `the state hash after reopening${snapshot ? ' from a snapshot' : ''}`).toBe(hash);
}
