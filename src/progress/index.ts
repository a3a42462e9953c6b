export {
  DIGEST_KEY,
  type ProgressEvent,
  type ProgressSummary,
  progressEvent,
  progressSummary,
} from "./events.ts";
export { JsonProgressWriter } from "./json.ts";
export {
  bar,
  defaultMode,
  ProgressRenderer,
  plainLine,
  type RendererOptions,
  shortKey,
  summaryLine,
  tableLines,
} from "./render.ts";
export { type ProgressEntry, type ProgressState, ProgressTracker, type ProgressUpdate } from "./tracker.ts";
