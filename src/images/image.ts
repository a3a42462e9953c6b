/** An image is a name pointing at a descriptor, per namespace; content and snapshots live elsewhere. */
import type { Descriptor } from "../descriptor.ts";

/** An image record: a name pointing at a root descriptor, with labels. */
export interface Image {
  name: string;
  target: Descriptor;
  labels: Record<string, string>;
  createdAt: Date;
  updatedAt: Date;
}

/** The image records of one namespace (name → descriptor). */
export interface ImageStore {
  get(name: string): Promise<Image>;
  list(filter?: { names?: string[] }): Promise<Image[]>;
  /** Creates the record; AlreadyExistsError when the name is taken. */
  create(image: Omit<Image, "createdAt" | "updatedAt">): Promise<Image>;
  /** Updates target and/or labels; NotFoundError when missing. */
  update(image: Omit<Image, "createdAt" | "updatedAt">, fieldpaths?: string[]): Promise<Image>;
  /** Create or replace. */
  put(image: Omit<Image, "createdAt" | "updatedAt">): Promise<Image>;
  /**
   * `sync`: a daemon collects the garbage before it answers (containerd's
   * images.SynchronousDelete); a store over a root ignores it (its caller
   * collects: `dist rmi --prune`).
   */
  delete(name: string, opts?: { sync?: boolean }): Promise<void>;
}
