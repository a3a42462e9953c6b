/** The ImageStore over a daemon's images service. */
import { isAlreadyExists } from "../../errors.ts";
import { labelTree } from "../../images/gc-labels.ts";
import type { Image, ImageStore } from "../../images/image.ts";
import { descriptorToWire, imageFromWire, type WireImage } from "../convert.ts";
import { unaryCall } from "./call.ts";
import type { Connection } from "./connection.ts";
import { RemoteContentStore } from "./content.ts";

type NewImage = Omit<Image, "createdAt" | "updatedAt">;

function toWire(i: NewImage) {
  return { name: i.name, labels: i.labels ?? {}, target: descriptorToWire(i.target) };
}

function quote(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

export class RemoteImageStore implements ImageStore {
  readonly #conn: Connection;
  constructor(conn: Connection) {
    this.#conn = conn;
  }

  async get(name: string): Promise<Image> {
    const res = await unaryCall<{ image: WireImage }>(this.#conn, "images", "Get", { name });
    return imageFromWire(res.image);
  }

  async list(filter: { names?: string[] } = {}): Promise<Image[]> {
    if (filter.names && filter.names.length === 0) return [];
    const filters = (filter.names ?? []).map((n) => `name==${quote(n)}`);
    const res = await unaryCall<{ images: WireImage[] }>(this.#conn, "images", "List", { filters });
    return res.images.map(imageFromWire).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** containerd keeps only what the image's labels reach: label the tree before recording it. */
  async #label(image: NewImage): Promise<void> {
    await labelTree(new RemoteContentStore(this.#conn), image.target);
  }

  async create(image: NewImage): Promise<Image> {
    await this.#label(image);
    const res = await unaryCall<{ image: WireImage }>(this.#conn, "images", "Create", { image: toWire(image) });
    return imageFromWire(res.image);
  }

  async update(image: NewImage, fieldpaths?: string[]): Promise<Image> {
    if (!fieldpaths || fieldpaths.length === 0 || fieldpaths.includes("target")) await this.#label(image);
    const res = await unaryCall<{ image: WireImage }>(this.#conn, "images", "Update", {
      image: toWire(image),
      update_mask: fieldpaths && fieldpaths.length > 0 ? { paths: fieldpaths } : null,
    });
    return imageFromWire(res.image);
  }

  async put(image: NewImage): Promise<Image> {
    try {
      return await this.create(image);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      return this.update(image, ["target", "labels"]);
    }
  }

  async delete(name: string, opts: { sync?: boolean } = {}): Promise<void> {
    await unaryCall(this.#conn, "images", "Delete", { name, sync: opts.sync === true });
  }
}
