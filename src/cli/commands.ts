/** Every command of the CLI, registered in the order `dist --help` lists them. */
import type { Command } from "commander";

type Register = (program: Command) => void;

const registrations: Register[] = [];

export function registerCommands(program: Command): void {
  for (const register of registrations) register(program);
}
