/** The filesystem content store. */
export { LocalStore, type LocalStoreOptions, type LocalWriterOptions } from "./store.ts";
export { LocalWriter } from "./writer.ts";
