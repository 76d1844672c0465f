import type { Bench } from './bench.js';
export const mcpReferenceBench: Bench = { name: 'mcp-reference', description: 'todo', async run() {} };
