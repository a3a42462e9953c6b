/**
 * The snapshotter names the daemon answers to, and where a real containerd's
 * calls go when it uses the daemon as its snapshotter.
 *
 * containerd's own names (`overlayfs`, `native`, and `overlay`) are always
 * there. A containerd with `[proxy_plugins.NAME] type = "snapshot"` sends the
 * plugin's name instead, and sends no namespace at all (containerd 1.6 keeps a
 * proxy snapshotter namespace-free: its metadata layer names the snapshots
 * `<namespace>/<n>/<key>` itself, and its garbage collection removes every
 * snapshot of the plugin it has no record of). So the daemon takes aliases,
 * NAME → overlay or native (`dist daemon --snapshotter-alias NAME=overlay`, by
 * default `dist` for the root's default snapshotter), and serves a snapshots
 * call that names an alias without a namespace in the namespace NAME: each
 * plugin has a namespace of its own, which its containerd owns and collects,
 * apart from dist's and from any other plugin's (two plugins on one
 * snapshotter would otherwise take each other's keys and collect each other's
 * snapshots). An unknown name stays an error, so a typo never lands anywhere.
 */
import { InvalidArgumentError } from "../errors.ts";
import { validateNamespace } from "../metadata/namespaces.ts";
import type { SnapshotterName } from "../snapshots/open.ts";

/** containerd's snapshotter names → ours. */
export const BUILTIN_SNAPSHOTTER_NAMES: Readonly<Record<string, SnapshotterName>> = {
  overlayfs: "overlay",
  overlay: "overlay",
  native: "native",
};

/** The alias a daemon has when none is given: `dist`, for the root's default snapshotter. */
export const DEFAULT_ALIAS = "dist";

/**
 * Parses `--snapshotter-alias NAME=overlay|native` values (`overlayfs` is
 * accepted for overlay) into NAME → snapshotter. NAME is also the namespace of
 * the plugin's snapshots, so it must be a valid namespace name.
 */
export function parseSnapshotterAliases(specs: readonly string[]): Record<string, SnapshotterName> {
  const out: Record<string, SnapshotterName> = {};
  for (const spec of specs) {
    const eq = spec.indexOf("=");
    const name = eq < 0 ? spec : spec.slice(0, eq);
    const to = eq < 0 ? "" : spec.slice(eq + 1);
    const what = `--snapshotter-alias ${spec}`;
    if (eq < 0) throw new InvalidArgumentError(`${what}: expected NAME=overlay or NAME=native`);
    try {
      validateNamespace(name);
    } catch {
      throw new InvalidArgumentError(
        `${what}: NAME is also the namespace of the plugin's snapshots: letters and digits separated by single ".", "_" or "-", at most 76 characters`,
      );
    }
    if (Object.hasOwn(BUILTIN_SNAPSHOTTER_NAMES, name)) {
      throw new InvalidArgumentError(`${what}: "${name}" is a snapshotter's own name`);
    }
    if (Object.hasOwn(out, name)) throw new InvalidArgumentError(`${what}: "${name}" is given twice`);
    const target = Object.hasOwn(BUILTIN_SNAPSHOTTER_NAMES, to) ? BUILTIN_SNAPSHOTTER_NAMES[to] : undefined;
    if (!target) throw new InvalidArgumentError(`${what}: unknown snapshotter "${to}" (overlay or native)`);
    out[name] = target;
  }
  return out;
}

/** The snapshotter a request's name means (undefined when the daemon has no such name). */
export function resolveSnapshotterName(
  name: string,
  aliases: Readonly<Record<string, SnapshotterName>>,
): SnapshotterName | undefined {
  if (Object.hasOwn(BUILTIN_SNAPSHOTTER_NAMES, name)) return BUILTIN_SNAPSHOTTER_NAMES[name];
  return Object.hasOwn(aliases, name) ? aliases[name] : undefined;
}
