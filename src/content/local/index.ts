/** The filesystem content store. */
export { LocalStore, type LocalStoreOptions } from "./store.ts";
