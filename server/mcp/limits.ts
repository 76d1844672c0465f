/**
 * Named bounds of the MCP surface (DESIGN §2.6: every size has a limit and a clear error).
 * Per-result bounds live beside the tools (tools/tool.ts resultBytesMax).
 */

/** JSON bytes of one tools/call `arguments` object: the memory module's own limit (tools/tool.ts). */
export { toolArgumentsBytesMax } from '../../tools/tool.js';

/** Nesting of one tools/call `arguments` value (objects and arrays); deeper is limit_exceeded (arguments-shape.ts). */
export const toolArgumentsDepthMax = 64;

/** The whole tools/list answer, as JSON: about 8k tokens, so a model keeps room to think. */
export const toolsListBytesMax = 32 * 1024;

/** resources/subscribe URIs one legacy session may hold. */
export const resourceSubscriptionsPerSessionMax = 1024;

/** Length of a resource URI accepted by read/subscribe. */
export const resourceUriLengthMax = 2048;
