/** containerd.services.images.v1.Images over an ImageStore. */
import type * as grpc from "@grpc/grpc-js";
import { InvalidArgumentError } from "../../errors.ts";
import { descriptorFromWire, imageToWire, type WireImage } from "../convert.ts";
import { adaptor, knownOnly, matchFilters, parseFilters } from "../filters.ts";
import type { Backend } from "./backend.ts";
import { type RpcHost, unary } from "./rpc.ts";

function imageArg(w: WireImage | null) {
  if (!w) throw new InvalidArgumentError("request needs an image");
  if (!w.name) throw new InvalidArgumentError("image name must not be empty");
  return { name: w.name, labels: w.labels ?? {}, target: descriptorFromWire(w.target) };
}

export function imagesService(host: RpcHost, backend: Backend): grpc.UntypedServiceImplementation {
  const M = "images.";
  return {
    Get: unary(host, `${M}Get`, async (req: { name: string }, ctx) => {
      if (!req.name) throw new InvalidArgumentError("image name must not be empty");
      return { image: imageToWire(await (await backend.images(ctx.namespace)).get(req.name)) };
    }),
    List: unary(host, `${M}List`, async (req: { filters: string[] }, ctx) => {
      const filters = knownOnly(parseFilters(req.filters), ["name", "labels", "target"], (m) => ctx.log.warn(m));
      const all = await (await backend.images(ctx.namespace)).list();
      const images = all
        .filter((i) =>
          matchFilters(
            filters,
            adaptor(
              {
                name: i.name,
                "target.digest": i.target.digest,
                "target.mediatype": i.target.mediaType,
                "target.media_type": i.target.mediaType,
              },
              i.labels,
            ),
          ),
        )
        .map(imageToWire);
      return { images };
    }),
    Create: unary(
      host,
      `${M}Create`,
      async (req: { image: WireImage | null }, ctx) => {
        const image = await (await backend.images(ctx.namespace)).create(imageArg(req.image));
        return { image: imageToWire(image) };
      },
      { mutating: true },
    ),
    Update: unary(
      host,
      `${M}Update`,
      async (req: { image: WireImage | null; update_mask: { paths: string[] } | null }, ctx) => {
        const paths = req.update_mask?.paths ?? [];
        const image = await (await backend.images(ctx.namespace)).update(
          imageArg(req.image),
          paths.length ? paths : undefined,
        );
        return { image: imageToWire(image) };
      },
      { mutating: true },
    ),
    Delete: unary(
      host,
      `${M}Delete`,
      async (req: { name: string; sync: boolean }, ctx) => {
        if (!req.name) throw new InvalidArgumentError("image name must not be empty");
        await (await backend.images(ctx.namespace)).delete(req.name);
        // containerd's images.SynchronousDelete: the collection is done before the answer
        if (req.sync) await backend.gc?.collectNow();
        else backend.gc?.schedule();
        return {};
      },
      { mutating: true },
    ),
  };
}
