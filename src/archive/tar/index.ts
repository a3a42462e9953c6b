/** Our own streaming tar reader and writer (see reader.ts and writer.ts). */
export type { TarEntryType, TarHeader, TarHeaderInit } from "./header.ts";
export { BLOCK, formatPaxTime, parsePaxTime } from "./header.ts";
export type { TarEntry, TarHandler } from "./reader.ts";
export { parsePaxRecords, readTar, TarParser } from "./reader.ts";
export { END_OF_ARCHIVE, encodeHeader, TarWriter } from "./writer.ts";
