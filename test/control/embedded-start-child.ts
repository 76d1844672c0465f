/** Child of embedded-first-start-kill.test.ts: starts the embedded database at argv[2] (and is killed meanwhile). */
import { startEmbeddedPostgres } from '../../storage/control/embedded-postgres.js';

const embedded = await startEmbeddedPostgres(process.argv[2]!);
process.stdout.write('started\n');
await embedded.close();
