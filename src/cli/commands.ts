/** Every command of the CLI, registered in the order `dist --help` lists them. */
import type { Command } from "commander";
import { register as content } from "./content.ts";
import { register as daemon } from "./daemon.ts";
import { register as images } from "./images.ts";

type Register = (program: Command) => void;

const registrations: Register[] = [images, content, daemon];

export function registerCommands(program: Command): void {
  for (const register of registrations) register(program);
}
