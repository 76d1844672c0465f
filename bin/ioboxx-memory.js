#!/usr/bin/env node
// Shim so plain `node` runs the CLI built by `npm install` (prepare -> tsc).
// libuv's thread pool (4 threads by default) runs every tenant's writev and fdatasync, token
// signature checks and file reads: with many tenants committing at once, 4 threads queue one
// tenant's fdatasync behind another's. Sized before anything uses the pool; the operator's value wins.
process.env.UV_THREADPOOL_SIZE ??= '16';
import('../dist/server/cli/main.js').catch((error) => {
  // Only a missing build is an install problem; anything else is the command's own failure.
  const notBuilt = error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('/dist/');
  process.stderr.write(notBuilt ? `ioboxx-memory: cannot start (${error.message}). Run \`npm install\` first.\n` : `ioboxx-memory: ${error?.stack ?? error}\n`);
  process.exit(1);
});
