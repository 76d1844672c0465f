// Part of `npm run build` (after tsc): writes dist/pglite-cluster-VERSION.tgz, an initialised
// PGlite cluster new data dirs start from (storage/control/embedded-cluster-template.ts).
import { writeClusterTemplate } from '../../dist/storage/control/embedded-cluster-template.js';

const startMs = performance.now();
const file = await writeClusterTemplate(new URL('../../dist/', import.meta.url).pathname);
process.stderr.write(`embedded database cluster template: ${file} (${((performance.now() - startMs) / 1000).toFixed(1)} s)\n`);
