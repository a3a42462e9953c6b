export { bar, defaultMode, ProgressRenderer, plainLine, type RendererOptions, summaryLine } from "./render.ts";
export { type ProgressEntry, type ProgressState, ProgressTracker, type ProgressUpdate } from "./tracker.ts";
