/**
 * Image names as users type them: `redis` for docker.io/library/redis:latest.
 * Records are stored under the name given when they were made (normalised by
 * pull and fetch, as typed by others), so a lookup tries both.
 */
import { isNotFound } from "../errors.ts";
import { normalize } from "../reference/index.ts";
import type { ImageStore } from "./image.ts";

/** The name `name` is stored under: itself, else its normalised form. NotFoundError names what was typed. */
export async function storedName(store: ImageStore, name: string): Promise<string> {
  try {
    await store.get(name);
    return name;
  } catch (err) {
    if (!isNotFound(err)) throw err;
    let n: string;
    try {
      n = normalize(name);
    } catch {
      throw err;
    }
    if (n === name) throw err;
    try {
      await store.get(n);
    } catch (err2) {
      if (isNotFound(err2)) throw err;
      throw err2;
    }
    return n;
  }
}

/** The name a new record gets: normalised when it is a reference, else as typed. */
export function newImageName(name: string): string {
  try {
    return normalize(name);
  } catch {
    return name;
  }
}
