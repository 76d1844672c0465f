/**
 * The SDK's Server, answering a spec request whose params fail the SDK's own schema as the
 * client's mistake, in words: -32602 (invalid params) naming each field and what is wrong
 * with it ("params.uri: Invalid input: expected string, received number"), with the {error}
 * data our other refusals carry. The SDK throws a plain Error there (a `resources/read`
 * without `uri`, say), which it answers -32603 (internal error), so a client would read its
 * own mistake as ours; and its messages (tools/call's too) are its zod issues as
 * pretty-printed JSON.
 *
 * A plain Error (its prototype Error's own) comes only from that check: our handlers throw
 * ProtocolError or MemoryError, and tools/call answers every refusal as an isError result.
 */
import { ProtocolError, ProtocolErrorCode, Server, type JSONRPCRequest, type Result, type ServerContext } from '@modelcontextprotocol/server';
import { issuesMessage, protocolErrorOf } from './error-mapping.js';

type Handler = (request: JSONRPCRequest, ctx: ServerContext) => Promise<Result>;

/** The SDK's message for a tools/call whose params fail its schema; its issues follow. */
const toolCallParamsPrefix = 'Invalid tools/call request: ';

interface Issue {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

function isIssue(value: unknown): value is Issue {
  const issue = value as Partial<Issue> | null;
  return typeof issue === 'object' && issue !== null && Array.isArray(issue.path) && typeof issue.message === 'string';
}

/** The SDK's issues JSON as one line, or the text itself when it is something else. */
function readableIssues(text: string): string {
  let issues: unknown;
  try {
    issues = JSON.parse(text);
  } catch {
    return text;
  }
  return Array.isArray(issues) && issues.length > 0 && issues.every(isIssue) ? issuesMessage(issues, 'params') : text;
}

function invalidParams(method: string, issuesText: string): ProtocolError {
  return protocolErrorOf({ code: 'invalid_argument', message: `invalid params for ${method}: ${readableIssues(issuesText)}`, hint: 'fix the named fields and send the request again' });
}

export class ParamsCheckedServer extends Server {
  protected override _wrapHandler(method: string, handler: Handler): Handler {
    const wrapped = super._wrapHandler(method, handler);
    return async (request, ctx) => {
      try {
        return await wrapped(request, ctx);
      } catch (error) {
        if (error instanceof Error && Object.getPrototypeOf(error) === Error.prototype) throw invalidParams(method, error.message);
        if (error instanceof ProtocolError && error.code === ProtocolErrorCode.InvalidParams && error.message.includes(toolCallParamsPrefix)) {
          throw invalidParams(method, error.message.slice(error.message.indexOf(toolCallParamsPrefix) + toolCallParamsPrefix.length));
        }
        throw error;
      }
    };
  }
}
