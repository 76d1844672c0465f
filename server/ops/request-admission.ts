/**
 * HTTP admission of MCP calls under the tenant load guard, placed as early as a tenant is
 * known: after authentication (one per request, shared with the route's own `identify`) and
 * before the body is read, parsed as JSON-RPC or handed to an MCP transport. Under a flood the
 * cost of a refused request is then its headers, one cached token check and a 429.
 *
 * Refusals are held: the 429 is written `retryAfterMs` (within refusalHoldMsMin..Max) after
 * the request came, and its Retry-After counts what is left. A client that follows Retry-After waits the
 * same either way; one that ignores it (retries at once) can now send at most one request per
 * connection per hold, instead of one per refusal round trip — each of which costs the one
 * event loop every tenant shares. A held refusal is a socket and a timer; past
 * `heldRefusalsMax` they are answered at once.
 */
import type { IncomingMessage, OutgoingHttpHeader, OutgoingHttpHeaders } from 'node:http';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Authenticate } from '../http/seams.js';
import { isRefusal } from '../http/seams.js';
import { MemoryError } from '../../storage/errors.js';
import { BusyError, retryAfterMsMax, type Release, type TenantLoadGuard } from './load-protection.js';

/** The longest a refusal is held before it is written (then Retry-After says the rest). */
export const refusalHoldMsMax = 1_000;
/**
 * The shortest hold: a rate refusal may say "a token comes in 1 ms", and a client ignoring
 * Retry-After would then cost a refusal per millisecond per connection. Before holds, the
 * same client was told to wait at least 1 s (Retry-After's unit), so this is no worse for it.
 */
export const refusalHoldMsMin = 100;
/** Refusals held at once over all tenants; past it they are answered at once. */
export const heldRefusalsMax = 4_096;
/**
 * An admitted call holds one of its tenant's slots while its body arrives (admission comes
 * before the body, so a refusal costs none of it). A body not all in by then is answered 408
 * and its connection closed: a client trickling bytes must not hold a slot for node's 300 s.
 */
export const admittedBodyMsMax = 10_000;

/** POSTs that carry MCP calls; GET streams (and DELETE) are not calls and are not admitted here. */
const callPathPattern = /^(?:\/t\/[^/]+)?\/(?:mcp|messages)$/;

export function isCallRequest(req: Request): boolean {
  return req.method === 'POST' && callPathPattern.test(req.path);
}

/**
 * One authentication per request, whoever asks first (the admission step, then the route's
 * `identify`): the verified answer is kept on the request, for its lifetime only.
 */
export function authenticateOncePerRequest(authenticate: Authenticate): Authenticate {
  const answers = new WeakMap<IncomingMessage, ReturnType<Authenticate>>();
  return (req) => {
    let answer = answers.get(req);
    if (answer === undefined) {
      answer = authenticate(req);
      answers.set(req, answer);
    }
    return answer;
  };
}

export interface RequestAdmissionOptions {
  readonly guard: TenantLoadGuard;
  /** The request's tenant; undefined lets it pass (unauthenticated: the route refuses it). */
  readonly tenantOf: (req: Request) => string | undefined | Promise<string | undefined>;
  /** Which requests are calls to admit (default: POST /mcp, /messages, also under /t/:tenant/). */
  readonly isCall?: (req: Request) => boolean;
  /** Default refusalHoldMsMax; 0 answers every refusal at once. */
  readonly refusalHoldMs?: number;
  /** Default admittedBodyMsMax (tests use less). */
  readonly bodyMs?: number;
}

/**
 * The tenant of an authenticated request, for `tenantOf`. Its principal is kept on the response
 * (`res.locals.principal`, as the routes keep it) so that a call refused here (429) is audited
 * in the caller's tenant (server/http/refusal-audit.ts).
 */
export function tenantByAuthentication(authenticate: Authenticate): (req: Request) => Promise<string | undefined> {
  return async (req) => {
    const who = await authenticate(req);
    if (isRefusal(who)) return undefined;
    if (req.res !== undefined) req.res.locals['principal'] = who;
    return who.caller.tenant;
  };
}

/**
 * Admission of one call whose tenant is known, for the express middleware below and for the
 * HTTP server's fast path of POST /mcp (server/http/fast-call.ts): the same guard, the same
 * held 429, the same slot release.
 */
export interface CallAdmission {
  /**
   * True once the call is admitted (its slot is given back when its response is over, or as it
   * turns into an event stream); false when it is refused (the 429 is written or held) or its
   * client left while it waited (nothing to answer).
   * `res` must be an express Response (the refusal is written with its API). `answeredAsJson`:
   * the caller knows the answer is one body, never an event stream (no watch on its headers).
   */
  admit(req: IncomingMessage, res: Response, tenant: string, answeredAsJson?: boolean): Promise<boolean>;
}

export function callAdmission(options: Pick<RequestAdmissionOptions, 'guard' | 'refusalHoldMs' | 'bodyMs'>): CallAdmission {
  const { guard } = options;
  const bodyMsMax = options.bodyMs ?? admittedBodyMsMax;
  const holdMsMax = options.refusalHoldMs ?? refusalHoldMsMax;
  if (!(holdMsMax >= 0 && holdMsMax <= retryAfterMsMax)) throw new Error(`refusalHoldMs ${holdMsMax} outside 0..${retryAfterMsMax}`);
  let held = 0;

  const refuse = (res: Response, error: BusyError) => {
    const holdMs = held < heldRefusalsMax ? Math.min(Math.max(error.retryAfterMs, refusalHoldMsMin), holdMsMax) : 0;
    const answer = () => {
      if (res.writableEnded || res.destroyed) return;
      const retryAfterMs = Math.max(0, error.retryAfterMs - holdMs);
      res.setHeader('Retry-After', String(Math.ceil(retryAfterMs / 1000)));
      res.status(429).json({
        jsonrpc: '2.0',
        id: null,
        error: { code: -32000, message: error.message, data: { code: 'busy', limit: error.limit, retryAfterMs, hint: error.hint } },
      });
    };
    if (holdMs === 0) return answer();
    held++;
    const timer = setTimeout(() => {
      held--;
      res.off('close', dropped);
      answer();
    }, holdMs);
    // The client went away while held: nothing to answer, and the timer is not needed.
    const dropped = () => {
      clearTimeout(timer);
      held--;
    };
    res.once('close', dropped);
  };

  return {
    async admit(req, res, tenant, answeredAsJson = false) {
      // Refused before any work of its own; admitted calls may still wait for a slot.
      let release: Release;
      try {
        release = await guard.acquire(tenant);
      } catch (error) {
        if (!(error instanceof BusyError)) throw error;
        refuse(res, error);
        return false;
      }
      // Its client left while it waited: nobody to answer, and a closed response never
      // emits 'close' again, so the slot is given back here.
      if (res.destroyed || req.socket.destroyed) {
        release();
        return false;
      }
      moreCallAdmitters.set(res, (count) => {
        let more: Release;
        try {
          more = guard.acquireNow(tenant, count);
        } catch (error) {
          if (error instanceof BusyError) refuse(res, error);
          else if (error instanceof MemoryError) res.status(400).json({ jsonrpc: '2.0', id: null, error: { code: -32600, message: `Invalid Request: ${error.message}`, data: { code: error.code, hint: error.hint } } });
          else throw error;
          return false;
        }
        res.once('close', more);
        return true;
      });
      // A response emits 'close' once, after 'finish' or when its client leaves.
      if (answeredAsJson) {
        res.once('close', release);
        slotAdopters.set(res, () => (res.off('close', release), release));
      } else releaseWhenAnswered(res, release);
      if (!req.complete) bodyDeadline(req, res, bodyMsMax);
      return true;
    },
  };
}

/** Per admitted response, what admits more calls for it at once (admitMoreCalls). */
const moreCallAdmitters = new WeakMap<object, (count: number) => boolean>();

/**
 * Admits `count` more calls for the admitted request `res`, at once or not at all: the requests
 * of a JSON-RPC batch past its first, each a call under its tenant's bounds as if posted alone
 * (admitted as one, a batch of a 1.25 MiB body ran ~14,000 calls at once past inFlightMax).
 * Their slots come back when the response closes. False when refused: answered then (429 as
 * any refusal, or 400 for a batch past inFlightMax, which no wait would admit). True when
 * admitted, or when `res` was not admitted here (no admission configured).
 */
export function admitMoreCalls(res: object, count: number): boolean {
  return moreCallAdmitters.get(res)?.(count) ?? true;
}

/** Per admitted response, what hands its call's slot over to the route (adoptAdmissionSlot). */
const slotAdopters = new WeakMap<object, () => Release>();

/**
 * Takes the admitted call's slot off `res`: it is then not given back with the response, but
 * when the returned function is called (once). For a route whose call outlives its POST: the
 * legacy HTTP+SSE transport answers a posted request 202 at once and its answer goes on the
 * session's stream; released with the 202, such calls ran without bound (past inFlightMax and
 * the queue). Undefined when `res` was not admitted (no admission configured, or not a call).
 */
export function adoptAdmissionSlot(res: object): Release | undefined {
  const adopt = slotAdopters.get(res);
  slotAdopters.delete(res);
  return adopt?.();
}

/** The admitted request's body must be all in within `bodyMsMax`, else 408 and the connection closes (which gives the slot back). */
function bodyDeadline(req: IncomingMessage, res: Response, bodyMsMax: number): void {
  const timer = setTimeout(() => {
    if (req.complete || res.destroyed) return;
    if (!res.headersSent) {
      res.setHeader('Connection', 'close');
      res.status(408).json({
        jsonrpc: '2.0',
        id: null,
        error: { code: -32000, message: `the request body did not arrive within ${bodyMsMax} ms (admittedBodyMsMax)`, data: { code: 'timeout', limit: 'admittedBodyMsMax' } },
      });
    }
    req.socket.destroySoon();
  }, bodyMsMax);
  timer.unref();
  const done = () => clearTimeout(timer);
  req.once('end', done);
  res.once('close', done);
}

/** Express middleware admitting every call request (isCall) of a known tenant. */
export function admissionMiddleware(admission: CallAdmission, tenantOf: RequestAdmissionOptions['tenantOf'], isCall: (req: Request) => boolean = isCallRequest): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    if (!isCall(req)) return next();
    void (async () => {
      const tenant = await tenantOf(req);
      if (tenant === undefined) return next();
      if (await admission.admit(req, res, tenant)) next();
    })().catch(next);
  };
}

export function requestAdmission(options: RequestAdmissionOptions): RequestHandler {
  return admissionMiddleware(callAdmission(options), options.tenantOf, options.isCall);
}

/**
 * The call's slot is held until its response is over; a response that turns into an event
 * stream (`subscriptions/listen`, a legacy session's SSE answer) is no longer one call's work
 * and gives its slot back as the stream starts.
 */
function releaseWhenAnswered(res: Response, release: Release): void {
  let released = false;
  const done = () => {
    if (released) return;
    released = true;
    release();
  };
  res.once('finish', done);
  res.once('close', done);
  const writeHead = res.writeHead;
  res.writeHead = function (this: Response, ...args: unknown[]) {
    const result = (writeHead as (...a: unknown[]) => Response).apply(this, args);
    if (isEventStream(res.getHeader('content-type')) || isEventStream(contentTypeIn(args))) done();
    return result;
  } as Response['writeHead'];
  slotAdopters.set(res, () => {
    res.off('finish', done);
    res.off('close', done);
    res.writeHead = writeHead;
    return done;
  });
}

function contentTypeIn(args: readonly unknown[]): OutgoingHttpHeader | undefined {
  for (const arg of args) {
    if (Array.isArray(arg)) {
      for (let i = 0; i + 1 < arg.length; i += 2) if (String(arg[i]).toLowerCase() === 'content-type') return arg[i + 1] as OutgoingHttpHeader;
    } else if (typeof arg === 'object' && arg !== null) {
      for (const [name, value] of Object.entries(arg as OutgoingHttpHeaders)) if (name.toLowerCase() === 'content-type') return value;
    }
  }
  return undefined;
}

function isEventStream(contentType: OutgoingHttpHeader | undefined): boolean {
  return contentType !== undefined && String(contentType).toLowerCase().startsWith('text/event-stream');
}
