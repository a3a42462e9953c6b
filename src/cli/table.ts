import { Option } from "commander";
import { InvalidArgumentError } from "../errors.ts";

/** Aligned columns for listings (tabwriter-like) and the `--output json` alternative. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}

export function printTable(header: string[], rows: string[][]): void {
  process.stdout.write(formatTable(header, rows));
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** `--output <format>` of a listing command; outputFormat reads it. */
export function outputOption(description = "table or json"): Option {
  return new Option("--output <format>", description).default("table");
}

/** Validates an --output value. */
export function outputFormat(value: string | undefined): "table" | "json" {
  if (value === undefined || value === "table") return "table";
  if (value === "json") return "json";
  throw new InvalidArgumentError(`invalid --output "${value}": expected table or json`);
}
