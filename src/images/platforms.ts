/**
 * Platforms as containerd spells them: parse `os[/arch[/variant]]`, normalise
 * the aliases people and kernels use (x86_64, aarch64, armhf, …), the host's
 * own platform, and matchers that also rank the candidates they accept.
 */
import type { Platform } from "../descriptor.ts";
import { InvalidArgumentError } from "../errors.ts";

const KNOWN_OS = new Set([
  "aix",
  "android",
  "darwin",
  "dragonfly",
  "freebsd",
  "hurd",
  "illumos",
  "ios",
  "js",
  "linux",
  "nacl",
  "netbsd",
  "openbsd",
  "plan9",
  "solaris",
  "wasip1",
  "windows",
  "zos",
]);

const KNOWN_ARCH = new Set([
  "386",
  "amd64",
  "amd64p32",
  "arm",
  "armbe",
  "arm64",
  "arm64be",
  "loong64",
  "mips",
  "mipsle",
  "mips64",
  "mips64le",
  "mips64p32",
  "mips64p32le",
  "ppc",
  "ppc64",
  "ppc64le",
  "riscv",
  "riscv64",
  "s390",
  "s390x",
  "sparc",
  "sparc64",
  "wasm",
]);

const COMPONENT = /^[A-Za-z0-9_.-]+$/;

export function normalizeOS(os: string): string {
  const o = os.toLowerCase();
  return o === "macos" ? "darwin" : o;
}

/** Normalises an architecture and its variant together, since aliases imply variants. */
export function normalizeArch(arch: string, variant = ""): { architecture: string; variant: string } {
  let a = arch.toLowerCase();
  let v = variant.toLowerCase();
  switch (a) {
    case "i386":
      a = "386";
      v = "";
      break;
    case "x86_64":
    case "x86-64":
    case "amd64":
      a = "amd64";
      if (v === "v1") v = "";
      break;
    case "aarch64":
    case "arm64":
      a = "arm64";
      if (v === "8" || v === "v8" || v === "v8.0") v = "";
      break;
    case "armhf":
      a = "arm";
      v = "v7";
      break;
    case "armel":
      a = "arm";
      v = "v6";
      break;
    case "arm":
      if (v === "" || v === "7") v = "v7";
      else if (v === "5" || v === "6" || v === "8") v = `v${v}`;
      break;
  }
  return { architecture: a, variant: v };
}

/** A platform with os, architecture and variant normalised; an empty variant is dropped. */
export function normalize(p: Platform): Platform {
  const { architecture, variant } = normalizeArch(p.architecture ?? "", p.variant ?? "");
  const out: Platform = { os: normalizeOS(p.os ?? ""), architecture };
  if (variant) out.variant = variant;
  if (p["os.version"]) out["os.version"] = p["os.version"];
  if (p["os.features"]) out["os.features"] = p["os.features"];
  return out;
}

/** `linux/arm64/v8` style: os/arch[/variant]. */
export function formatPlatform(p: Platform): string {
  const parts = [p.os || "unknown", p.architecture || "unknown"];
  if (p.variant) parts.push(p.variant);
  return parts.join("/");
}

/** The platform this process runs on, as an image would declare it. */
export function hostPlatform(): Platform {
  const os = normalizeOS(process.platform === "win32" ? "windows" : process.platform);
  const archMap: Record<string, string> = {
    x64: "amd64",
    ia32: "386",
    arm64: "arm64",
    arm: "arm",
    ppc64: "ppc64le",
    s390x: "s390x",
    riscv64: "riscv64",
    loong64: "loong64",
    mips64el: "mips64le",
    mipsel: "mipsle",
  };
  const arch = archMap[process.arch] ?? process.arch;
  let variant = "";
  if (arch === "arm") {
    const v = (process.config.variables as Record<string, unknown>).arm_version;
    if (v !== undefined) variant = `v${v}`;
  }
  // an image for darwin hosts is a linux image run in a VM, as containerd assumes
  return normalize({ os: os === "darwin" ? "linux" : os, architecture: arch, variant });
}

/**
 * Parses `os`, `arch`, `os/arch` or `os/arch/variant`. A lone component that is
 * a known OS takes the host's architecture; otherwise it is an architecture on
 * the host's OS (so `arm64` means linux/arm64 on Linux).
 */
export function parsePlatform(spec: string): Platform {
  const s = spec.trim();
  const parts = s.split("/");
  if (s === "" || parts.length > 3 || parts.some((p) => !COMPONENT.test(p))) {
    throw new InvalidArgumentError(
      `invalid platform "${spec}": expected os[/arch[/variant]], e.g. linux/amd64 or linux/arm/v7`,
    );
  }
  const host = hostPlatform();
  if (parts.length === 1) {
    const one = parts[0].toLowerCase();
    if (KNOWN_OS.has(normalizeOS(one))) {
      const os = normalizeOS(one);
      return normalize(os === host.os ? host : { os, architecture: host.architecture, variant: host.variant });
    }
    const { architecture } = normalizeArch(one);
    if (!KNOWN_ARCH.has(architecture)) {
      throw new InvalidArgumentError(`invalid platform "${spec}": unknown operating system or architecture`);
    }
    return normalize({ os: host.os, architecture: one });
  }
  const os = normalizeOS(parts[0]);
  if (!KNOWN_OS.has(os))
    throw new InvalidArgumentError(`invalid platform "${spec}": unknown operating system "${parts[0]}"`);
  const { architecture } = normalizeArch(parts[1]);
  if (!KNOWN_ARCH.has(architecture)) {
    throw new InvalidArgumentError(`invalid platform "${spec}": unknown architecture "${parts[1]}"`);
  }
  return normalize({ os, architecture: parts[1], variant: parts[2] ?? "" });
}

/** Accepts some platforms and ranks them: `less(a, b)` when a is preferred to b. */
export interface PlatformMatcher {
  match(p: Platform): boolean;
  less(a: Platform, b: Platform): boolean;
  toString(): string;
  /** Set when the matcher accepts every platform (--all-platforms): filters keep everything. */
  all?: boolean;
}

function samePlatform(a: Platform, b: Platform): boolean {
  const x = normalize(a);
  const y = normalize(b);
  return x.os === y.os && x.architecture === y.architecture && (x.variant ?? "") === (y.variant ?? "");
}

/**
 * The platforms a host of `p` can run, best first (containerd's platformVector):
 * arm64 also runs arm v8..v5, amd64 v3 also v2, v1 and 386, arm v7 also v6 and v5.
 */
export function compatiblePlatforms(p: Platform): Platform[] {
  const n = normalize(p);
  const out: Platform[] = [n];
  const variantNumber = (v: string | undefined, dflt: number) => {
    const m = /^v(\d+)/.exec(v ?? "");
    return m ? Number(m[1]) : dflt;
  };
  const add = (architecture: string, variant?: string) => out.push(normalize({ os: n.os, architecture, variant }));
  switch (n.architecture) {
    case "amd64": {
      for (let v = variantNumber(n.variant, 1) - 1; v >= 1; v--) add("amd64", v === 1 ? "" : `v${v}`);
      add("386");
      break;
    }
    case "arm64": {
      for (let v = 8; v >= 5; v--) add("arm", `v${v}`);
      break;
    }
    case "arm": {
      for (let v = variantNumber(n.variant, 7) - 1; v >= 5; v--) add("arm", `v${v}`);
      break;
    }
  }
  return out;
}

/** Matches the given platforms in order of preference, each exactly (after normalisation). */
export function ordered(...ps: Platform[]): PlatformMatcher {
  const list = ps.map(normalize);
  const rank = (p: Platform) => {
    const i = list.findIndex((q) => samePlatform(p, q));
    return i < 0 ? Number.MAX_SAFE_INTEGER : i;
  };
  return {
    match: (p) => rank(p) !== Number.MAX_SAFE_INTEGER,
    less: (a, b) => rank(a) < rank(b),
    toString: () => list.map(formatPlatform).join(","),
  };
}

/** What a host of `p` can run, preferring `p` itself (containerd's platforms.Only). */
export function only(p: Platform): PlatformMatcher {
  const m = ordered(...compatiblePlatforms(p));
  return { ...m, toString: () => formatPlatform(normalize(p)) };
}

/** Accepts everything; no preference. */
export function allPlatforms(): PlatformMatcher {
  return { match: () => true, less: () => false, toString: () => "all", all: true };
}

/** The default for pulls: what the host runs. */
export function defaultMatcher(): PlatformMatcher {
  return only(hostPlatform());
}
