#!/usr/bin/env node
// Shim so plain `node` runs the CLI built by `npm install` (prepare -> tsc).
import('../dist/server/cli/main.js').catch((error) => {
  process.stderr.write(`ioboxx-memory: cannot start (${error.message}). Run \`npm install\` first.\n`);
  process.exit(1);
});
