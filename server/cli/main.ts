/** Entry point of the `ioboxx-memory` binary (bin/ioboxx-memory.js imports the built copy). */
import { buildProgram, registerOptionalCommands } from './program.js';

const program = buildProgram();
await registerOptionalCommands(program);
await program.parseAsync(process.argv);
