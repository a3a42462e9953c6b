import { AlreadyExistsError } from "../errors.ts";
import type { Image, ImageStore } from "./image.ts";

/** Points `dst` at `src`'s target (labels copied); AlreadyExistsError unless `force`. */
export async function tagImage(
  store: ImageStore,
  src: string,
  dst: string,
  opts: { force?: boolean } = {},
): Promise<Image> {
  const from = await store.get(src);
  const image = { name: dst, target: from.target, labels: { ...from.labels } };
  if (opts.force) return store.put(image);
  try {
    return await store.create(image);
  } catch (err) {
    if (err instanceof AlreadyExistsError) {
      throw new AlreadyExistsError(`image "${dst}" already exists (use --force to replace it)`, { cause: err });
    }
    throw err;
  }
}
