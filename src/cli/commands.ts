/** Every command of the CLI, registered in the order `dist --help` lists them. */
import type { Command } from "commander";
import { register as apply } from "./apply.ts";
import { register as content } from "./content.ts";
import { register as copy } from "./copy.ts";
import { register as daemon } from "./daemon.ts";
import { register as exportImages } from "./export.ts";
import { register as fetch } from "./fetch.ts";
import { register as gc } from "./gc.ts";
import { register as images } from "./images.ts";
import { register as importImages } from "./import.ts";
import { register as pull } from "./pull.ts";
import { register as push } from "./push.ts";
import { register as rootfs } from "./rootfs.ts";
import { register as run } from "./run.ts";
import { register as serve } from "./serve.ts";
import { register as snapshots } from "./snapshots.ts";

type Register = (program: Command) => void;

const registrations: Register[] = [
  images,
  content,
  daemon,
  pull,
  fetch,
  rootfs,
  apply,
  snapshots,
  run,
  exportImages,
  importImages,
  push,
  copy,
  serve,
  gc,
];

export function registerCommands(program: Command): void {
  for (const register of registrations) register(program);
}
