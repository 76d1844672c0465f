/** Entry point of the `ioboxx-memory` binary (bin/ioboxx-memory.js imports the built copy). */
import { buildProgram } from './program.js';

// An operator command's process warnings (the AWS SDK's eight-line Node-version notice, printed by
// every command that reaches S3) as one line each on stderr, not a block between the report's
// lines. `serve` replaces this with log lines (log.ts logProcessWarnings).
process.removeAllListeners('warning');
process.on('warning', (warning) => process.stderr.write(`warning: ${warning.message.replace(/\s*\n\s*/g, ' ')}\n`));

await buildProgram().parseAsync(process.argv);
