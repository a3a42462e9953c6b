/**
 * Worker thread entry of applyLayer: parses the uncompressed tar chunks the main
 * thread posts and applies them with synchronous syscalls, acknowledging each
 * chunk so the main thread can bound what is in flight.
 */
import { parentPort, workerData } from "node:worker_threads";
import { type ApplierOptions, LayerApplier } from "./applier.ts";
import { TarParser } from "./tar/reader.ts";

export interface WorkerInit {
  root: string;
  opts: Omit<ApplierOptions, "onWarning">;
}

export type ToWorker = { chunk: Uint8Array } | { end: true };
export type FromWorker =
  | { ack: number }
  | { warning: string }
  | { done: true; bytes: number }
  | { error: { message: string; code?: string; name?: string } };

const port = parentPort!;
const init = workerData as WorkerInit;
const applier = new LayerApplier(init.root, {
  ...init.opts,
  onWarning: (warning) => port.postMessage({ warning } satisfies FromWorker),
});
const parser = new TarParser(applier);
let failed = false;

port.on("message", (m: ToWorker) => {
  if (failed) return;
  try {
    if ("chunk" in m) {
      parser.push(Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.byteLength));
      port.postMessage({ ack: m.chunk.byteLength } satisfies FromWorker);
    } else {
      parser.finish();
      applier.finish();
      port.postMessage({ done: true, bytes: applier.bytes } satisfies FromWorker);
      port.close();
    }
  } catch (e) {
    failed = true;
    applier.abort();
    const err = e as { message?: string; code?: unknown; name?: string };
    port.postMessage({
      error: {
        message: String(err?.message ?? e),
        code: typeof err?.code === "string" ? err.code : undefined,
        name: err?.name,
      },
    } satisfies FromWorker);
    port.close();
  }
});
