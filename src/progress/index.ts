export { ProgressTracker, type ProgressEntry, type ProgressState, type ProgressUpdate } from "./tracker.ts";
export { bar, defaultMode, plainLine, ProgressRenderer, type RendererOptions, summaryLine } from "./render.ts";
