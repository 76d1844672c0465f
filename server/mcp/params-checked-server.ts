/**
 * The SDK's Server, answering a spec request whose params fail the SDK's own schema as the
 * client's mistake: -32602 (invalid params). The SDK throws a plain Error there (a
 * `resources/read` without `uri`, say), which it answers -32603 (internal error), so a client
 * would read its own mistake as ours.
 *
 * A plain Error (its prototype Error's own) comes only from that check: our handlers throw
 * ProtocolError or MemoryError, and tools/call answers every refusal as an isError result.
 */
import { ProtocolError, ProtocolErrorCode, Server, type JSONRPCRequest, type Result, type ServerContext } from '@modelcontextprotocol/server';

type Handler = (request: JSONRPCRequest, ctx: ServerContext) => Promise<Result>;

export class ParamsCheckedServer extends Server {
  protected override _wrapHandler(method: string, handler: Handler): Handler {
    const wrapped = super._wrapHandler(method, handler);
    return async (request, ctx) => {
      try {
        return await wrapped(request, ctx);
      } catch (error) {
        if (error instanceof Error && Object.getPrototypeOf(error) === Error.prototype) {
          throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Invalid params for ${method}: ${error.message}`);
        }
        throw error;
      }
    };
  }
}
