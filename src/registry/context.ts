/** What every request handler of the registry server shares. */
import type { Store } from "../content/content.ts";
import type { Digest } from "../digest.ts";
import type { ImageStore } from "../images/image.ts";
import { isValidDomain } from "../reference/reference.ts";
import type { Downloads } from "./downloads.ts";
import { RegistryError } from "./errors.ts";
import type { Request } from "./http.ts";
import type { Uploads } from "./uploads.ts";
import type { Upstream } from "./upstream.ts";
import type { StoreView } from "./view.ts";

export interface Context {
  content: Store;
  images: ImageStore;
  view: StoreView;
  /** The registry whose names are served to requests without `?ns=` (--registry), when one was chosen. */
  registry?: string;
  allowPush: boolean;
  uploads: Uploads;
  upstream?: Upstream;
  downloads: Downloads;
  /** Blobs this server took in (uploads) or confirmed upstream: servable before any image references them. */
  known: Set<Digest>;
  onWarning?: (message: string) => void;
}

/** The `?ns=` of a mirror request (validated), or undefined. */
export function namespaceOf(query: URLSearchParams): string | undefined {
  const ns = query.get("ns");
  if (ns === null) return undefined;
  if (!isValidDomain(ns)) throw new RegistryError(400, "NAME_INVALID", `invalid ns "${ns.slice(0, 100)}"`);
  return ns;
}

/**
 * The registry a request is about: its `?ns=`, else the server's --registry,
 * else the first upstream; undefined: any registry whose names match.
 */
export function registryOf(ctx: Context, ns: string | undefined): string | undefined {
  return ns ?? ctx.registry ?? ctx.upstream?.registries[0];
}

/** The registry part of the names of pushed images: --registry, else the Host the client addressed. */
export function pushRegistry(ctx: Context, req: Request): string {
  if (ctx.registry) return ctx.registry;
  const host = req.headers.host ?? "";
  if (!isValidDomain(host)) throw new RegistryError(400, "NAME_INVALID", `invalid Host header "${host.slice(0, 100)}"`);
  return host;
}
