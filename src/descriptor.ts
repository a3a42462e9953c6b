/** OCI content descriptors and platforms (image-spec), the currency of every walk. */
import type { Digest } from "./digest.ts";

/** The platform an image manifest runs on (OCI image-spec): os, architecture, variant. */
export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  "os.version"?: string;
  "os.features"?: string[];
}

/** An OCI content descriptor: what a blob is (media type), its digest and size, and optional platform and annotations. */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
  /** Inline content (base64), as OCI allows for small blobs. */
  data?: string;
}
