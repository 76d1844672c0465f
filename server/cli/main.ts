/** Entry point of the `ioboxx-memory` binary (bin/ioboxx-memory.js imports the built copy). */
import { buildProgram } from './program.js';

await buildProgram().parseAsync(process.argv);
