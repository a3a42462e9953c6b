/** The filesystem content store. */
export type { LabelSet, LabelStore } from "./labels.ts";
export { LocalStore, type LocalStoreOptions } from "./store.ts";
