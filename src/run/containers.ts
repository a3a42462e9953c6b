/**
 * Container records: what `dist run` created for a container, kept under
 * `<root>/containers/<id>/` (container.json, the bundle, runc's log) so that
 * `ps`, `kill` and `rm` find it again and `rm` can undo exactly that.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../errors.ts";
import type { RootlessContext } from "./rootless.ts";

export interface ContainerRecord {
  id: string;
  namespace: string;
  /** The image name as stored, and the manifest that was run. */
  image: string;
  manifest: string;
  snapshotter: string;
  snapshotKey: string;
  /** Bundle directory (config.json) and the rootfs runc was given. */
  bundle: string;
  rootfs: string;
  /** True while rootfs is a mount of ours that must be unmounted. */
  mounted: boolean;
  runtime: string;
  runtimeRoot: string;
  args: string[];
  detached: boolean;
  autoRemove: boolean;
  stopSignal?: string;
  /** stdout and stderr of a detached container. */
  log?: string;
  createdAt: string;
  /** Made by a user without root, in a user namespace of this mapping (run/rootless.ts). */
  rootless?: RootlessContext;
}

/** containerd's identifier rule: alphanumerics joined by single . _ or -, at most 76 characters. */
const ID = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

export function validateContainerId(id: string): string {
  if (id.length === 0 || id.length > 76 || !ID.test(id)) {
    throw new InvalidArgumentError(
      `invalid container id "${id}": letters and digits joined by single ".", "_" or "-", at most 76 characters`,
    );
  }
  return id;
}

export function containersDir(root: string): string {
  return join(root, "containers");
}

export function containerDir(root: string, id: string): string {
  return join(containersDir(root), validateContainerId(id));
}

/** Claims the id by creating its directory; a second claim fails, so two runs never share an id. */
export function reserveContainer(root: string, id: string): string {
  const dir = containerDir(root, id);
  mkdirSync(containersDir(root), { recursive: true, mode: 0o700 });
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as { code?: string }).code === "EEXIST") {
      throw new AlreadyExistsError(`container id "${id}" is already in use (dist rm ${id} removes it)`);
    }
    throw err;
  }
  return dir;
}

const RECORD = "container.json";

export function writeRecord(root: string, rec: ContainerRecord): void {
  const dir = containerDir(root, rec.id);
  const tmp = join(dir, `.${RECORD}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(rec, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, join(dir, RECORD));
}

export function readRecord(root: string, id: string): ContainerRecord {
  const file = join(containerDir(root, id), RECORD);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") throw new NotFoundError(`container "${id}" not found`);
    throw err;
  }
  return JSON.parse(text) as ContainerRecord;
}

/** Every recorded container (a directory without a record, mid-creation, is left out). */
export function listRecords(root: string): ContainerRecord[] {
  let names: string[];
  try {
    names = readdirSync(containersDir(root));
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return [];
    throw err;
  }
  const out: ContainerRecord[] = [];
  for (const n of names.sort()) {
    if (!ID.test(n)) continue;
    try {
      out.push(readRecord(root, n));
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }
  return out;
}
