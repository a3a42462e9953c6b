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
  /** Slots of slotSize bytes the main thread fills; a message names the slot and its length. */
  shared: SharedArrayBuffer;
  slotSize: number;
}

export type ToWorker = { slot: number; length: number } | { end: true };
export type FromWorker =
  | { ack: number } // the slot is free again
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
    if ("slot" in m) {
      parser.push(Buffer.from(init.shared, m.slot * init.slotSize, m.length));
      port.postMessage({ ack: m.slot } satisfies FromWorker);
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
