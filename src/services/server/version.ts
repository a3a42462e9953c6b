/** containerd.services.version.v1.Version: what ctr version prints as the server's. */
import type * as grpc from "@grpc/grpc-js";
import { version } from "../../version.ts";
import { type RpcHost, unary } from "./rpc.ts";

export function versionService(host: RpcHost): grpc.UntypedServiceImplementation {
  const v = version();
  return {
    Version: unary(host, "version.Version", async () => ({ version: `dist ${v}`, revision: v })),
  };
}
