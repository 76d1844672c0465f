/**
 * The fast path of the hottest HTTP exchange: a POST /mcp on an open 2025-era session, with a
 * JSON body of known length. Through express each such call walked the router (every
 * middleware layer matched against the path, `next` closures, params), then body-parser
 * (type-is, content-type parsing, raw-body, iconv, on-finished): about 13% of the server's CPU
 * per call by self time in a profile of the audit benchmark, more with the garbage it left.
 *
 * This path takes the same steps in the same order with plain code — the Host check (the
 * SDK's own validator, as the express guard calls it), authentication,
 * admission under the tenant's limits, a bounded body read, JSON.parse under body-parser's
 * strict rule — and hands the request to the same handler the express route ends in. It
 * takes a request only when every header it looks at has the plain form it understands;
 * anything else (another path or method, a query string, no session id, a chunked, encoded,
 * empty or oversized body, another charset, a Host the guard would refuse, any Origin, a token
 * that does not verify) goes to express before anything is read or answered, so every
 * refusal is still express's own, with the same bytes.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Express, Request, Response } from 'express';
import { validateHostHeader } from '@modelcontextprotocol/server';
import type { Principal } from '../auth/principal.js';
import type { CallAdmission } from '../ops/request-admission.js';
import { sendBodyNotMessage } from './json-rpc-error.js';
import { isRefusal, type Authenticate } from './seams.js';
import { callerActive } from '../../storage/log/inline-sync.js';

/** The one path taken (express also routes `/MCP`, `/mcp/` and `/t/:tenant/mcp`: those stay there). */
export const fastCallPath = '/mcp';
/** `application/json`, optionally with the one charset body-parser decodes as plain UTF-8. */
const jsonContentTypePattern = /^application\/json(?:[ \t]*;[ \t]*charset="?utf-8"?)?$/i;
const contentLengthPattern = /^[0-9]{1,10}$/;
/**
 * Host header values the Host guard accepted, remembered so that a keep-alive client's
 * identical header is not parsed as a URL again per request (the validator is a pure function
 * of the value and the fixed allowed list); past this many, values are checked every time.
 */
export const acceptedHostHeadersMax = 64;
/** body-parser's strict rule: a JSON body must be an object or an array (after JSON whitespace). */
const strictFirstCharPattern = /^[\x20\x09\x0a\x0d]*([^\x20\x09\x0a\x0d])/;

export interface FastCallOptions {
  readonly app: Express;
  readonly authenticate: Authenticate;
  readonly admission: CallAdmission | undefined;
  /** Host names the Host guard allows, or undefined when no Host guard is mounted. */
  readonly allowedHostnames: string[] | undefined;
  readonly bodyBytesMax: number;
  /** The express route's own handler for /mcp once its principal is in res.locals and req.body parsed. */
  readonly serveMcp: (req: Request, res: Response) => Promise<void>;
  /** What the express error handler does with an error the route passed on. */
  readonly answerError: (error: unknown, req: Request, res: Response) => void;
}

/**
 * The request's body length when the fast path may take it, else undefined (express takes
 * it). Only headers are read: nothing is consumed or answered.
 */
export function fastCallBodyBytes(
  req: IncomingMessage,
  options: Pick<FastCallOptions, 'allowedHostnames' | 'bodyBytesMax'>,
  acceptedHosts?: Set<string>,
): number | undefined {
  if (req.method !== 'POST' || req.url !== fastCallPath) return undefined;
  const headers = req.headers;
  if (typeof headers['mcp-session-id'] !== 'string') return undefined;
  const contentType = headers['content-type'];
  if (contentType === undefined || !jsonContentTypePattern.test(contentType)) return undefined;
  if (headers['content-encoding'] !== undefined || headers['transfer-encoding'] !== undefined) return undefined;
  const lengthText = headers['content-length'];
  if (lengthText === undefined || !contentLengthPattern.test(lengthText)) return undefined;
  const bodyBytes = Number(lengthText);
  if (bodyBytes === 0 || bodyBytes > options.bodyBytesMax) return undefined;
  if (options.allowedHostnames !== undefined && !hostAccepted(headers.host, options.allowedHostnames, acceptedHosts)) return undefined;
  if (headers.origin !== undefined) return undefined; // a browser's: express checks it and adds the CORS headers
  return bodyBytes;
}

/**
 * Request and response classes for http.createServer whose instances inherit the app's
 * express prototypes from birth, as the fast path needs them (express's own path still sets
 * its prototypes per request, to the same objects).
 */
export function expressMessageClasses(app: Express): Pick<http.ServerOptions, 'IncomingMessage' | 'ServerResponse'> {
  class ExpressIncomingMessage extends http.IncomingMessage {}
  Object.setPrototypeOf(ExpressIncomingMessage.prototype, app.request);
  class ExpressServerResponse<Req extends IncomingMessage = IncomingMessage> extends http.ServerResponse<Req> {}
  Object.setPrototypeOf(ExpressServerResponse.prototype, app.response);
  return { IncomingMessage: ExpressIncomingMessage, ServerResponse: ExpressServerResponse };
}

function hostAccepted(host: string | undefined, allowedHostnames: string[], accepted: Set<string> | undefined): boolean {
  if (host !== undefined && accepted?.has(host)) return true;
  if (!validateHostHeader(host, allowedHostnames).ok) return false;
  if (host !== undefined && accepted !== undefined && accepted.size < acceptedHostHeadersMax) accepted.add(host);
  return true;
}

/** The request's handler for node:http: the fast path where it applies, express everywhere else. */
export function fastCallHandler(options: FastCallOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { app, authenticate, admission } = options;
  const acceptedHosts = new Set<string>();
  // What express's app.handle does to every request before its router: its request and
  // response prototypes (res.status().json(), req.path, ...), the circular references, locals.
  const expressRequest = app.request as object;
  const expressResponse = app.response as object;
  // A server built with expressMessageClasses made them inherit express's prototypes already:
  // no prototype change per request (each one costs V8 a new hidden class).
  const asExpress = (req: IncomingMessage, res: ServerResponse): [Request, Response] => {
    const r = req as Request;
    const s = res as Response;
    r.res = s;
    s.req = r;
    if (!Object.prototype.isPrototypeOf.call(expressRequest, req)) Object.setPrototypeOf(req, expressRequest);
    if (!Object.prototype.isPrototypeOf.call(expressResponse, res)) Object.setPrototypeOf(res, expressResponse);
    s.locals = Object.create(null) as Response['locals'];
    return [r, s];
  };

  const serveFast = async (req: IncomingMessage, res: ServerResponse, bodyBytes: number): Promise<void> => {
    const who = await authenticate(req);
    // A refusal is answered by express's route (the answer is kept per request: not redone).
    if (isRefusal(who)) return void app(req, res);
    const [request, response] = asExpress(req, res);
    response.locals['principal'] = who satisfies Principal; // before admission: a 429 is audited in the caller's tenant
    try {
      // A POST on a session is answered with one JSON body (SessionTransport), never a stream.
      if (admission !== undefined && !(await admission.admit(request, response, who.caller.tenant, true))) return;
      const read = bodyText(req, bodyBytes);
      const text = typeof read === 'string' ? read : await read;
      if (text === undefined) return; // the client left mid-body: nobody to answer
      const first = strictFirstCharPattern.exec(text)?.[1];
      let body: unknown;
      try {
        if (first !== '{' && first !== '[') throw new SyntaxError('not an object or array');
        body = JSON.parse(text);
      } catch {
        sendBodyNotMessage(response, text);
        return;
      }
      request.body = body;
      await options.serveMcp(request, response);
    } catch (error) {
      options.answerError(error, request, response);
    }
  };

  return (req, res) => {
    // Each connection is a caller: many at once keep a lone batch's fdatasync off this thread.
    callerActive(req.socket);
    const bodyBytes = fastCallBodyBytes(req, options, acceptedHosts);
    if (bodyBytes === undefined) return void app(req, res);
    serveFast(req, res, bodyBytes).catch((error: unknown) => {
      const [request, response] = asExpress(req, res);
      options.answerError(error, request, response);
    });
  };
}

/**
 * The body as text (UTF-8, a leading byte order mark dropped as body-parser's decoder drops
 * it), or undefined if the client went away first. Its length is the declared one: node's
 * parser frames the body by Content-Length.
 */
function bodyText(req: IncomingMessage, bodyBytes: number): Promise<string | undefined> | string {
  // Usually the whole body came in the headers' packet and is buffered by now (its end is
  // parsed a moment later): take it at once. Content-Length frames it, so these are all its bytes.
  if (req.readableLength === bodyBytes && req.readableFlowing === null) {
    const bytes = req.read() as Buffer | null;
    if (bytes !== null && bytes.length === bodyBytes) return textOf(bytes);
  }
  return new Promise((resolve) => {
    let single: Buffer | undefined;
    let chunks: Buffer[] | undefined;
    let settled = false;
    const settle = (text: string | undefined) => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('aborted', onGone);
      req.off('error', onGone);
      resolve(text);
    };
    const onData = (chunk: Buffer) => {
      if (single === undefined && chunks === undefined) single = chunk;
      else (chunks ??= [single!]).push(chunk);
    };
    const onEnd = () => {
      settle(textOf(chunks !== undefined ? Buffer.concat(chunks, bodyBytes) : (single ?? Buffer.alloc(0))));
    };
    const onGone = () => settle(undefined);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('aborted', onGone);
    req.on('error', onGone);
  });
}

function textOf(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}
