/** `ioboxx-memory store verify|inspect|snapshot|repair` (engine owner writes the body). */
import type { Command } from 'commander';

export function registerStoreCommands(program: Command): void {
  void program;
}
