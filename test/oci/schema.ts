/**
 * A compact, JSON-schema-like description of the OCI runtime-spec config.json
 * (v1.0.2, schema/config-schema.json + config-linux.json + defs*.json) for the
 * parts dist emits and umoci writes, and a checker for it. Stricter than the
 * official schema in one way: unknown keys are errors, so a misspelt field
 * ("readOnly", "additionalGIDs") fails instead of being silently ignored.
 */

export type Schema =
  | { type: "string"; pattern?: RegExp; enum?: readonly string[] }
  | { type: "integer"; min?: number; max?: number }
  | { type: "boolean" }
  | { type: "array"; items: Schema; minItems?: number }
  | { type: "object"; properties?: Record<string, Schema>; required?: readonly string[]; values?: Schema };

const str = (pattern?: RegExp): Schema => ({ type: "string", ...(pattern ? { pattern } : {}) });
const uint32: Schema = { type: "integer", min: 0, max: 2 ** 32 - 1 };
const uint64: Schema = { type: "integer", min: 0, max: Number.MAX_SAFE_INTEGER };
const bool: Schema = { type: "boolean" };
const arr = (items: Schema, minItems?: number): Schema => ({ type: "array", items, ...(minItems ? { minItems } : {}) });
const obj = (properties: Record<string, Schema>, required: readonly string[] = []): Schema => ({
  type: "object",
  properties,
  required,
});

const ABS = /^\//;
const CAP = /^CAP_[A-Z_]+$/;
const caps = arr(str(CAP));

export const CONFIG_SCHEMA: Schema = obj(
  {
    ociVersion: str(/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/),
    hostname: str(),
    root: obj({ path: str(), readonly: bool }, ["path"]),
    process: obj(
      {
        terminal: bool,
        consoleSize: obj({ height: uint64, width: uint64 }, ["height", "width"]),
        cwd: str(ABS),
        env: arr(str(/^[^=]+=/)),
        args: arr(str(), 1),
        user: obj({ uid: uint32, gid: uint32, umask: uint32, additionalGids: arr(uint32), username: str() }, [
          "uid",
          "gid",
        ]),
        capabilities: obj({ bounding: caps, effective: caps, inheritable: caps, permitted: caps, ambient: caps }),
        rlimits: arr(obj({ type: str(/^RLIMIT_[A-Z]+$/), hard: uint64, soft: uint64 }, ["type", "hard", "soft"])),
        noNewPrivileges: bool,
        apparmorProfile: str(),
        oomScoreAdj: { type: "integer" },
        selinuxLabel: str(),
      },
      ["cwd", "args"],
    ),
    mounts: arr(obj({ destination: str(ABS), type: str(), source: str(), options: arr(str()) }, ["destination"])),
    annotations: { type: "object", values: str() },
    linux: obj({
      cgroupsPath: str(),
      resources: obj({
        devices: arr(
          obj(
            {
              allow: bool,
              type: { type: "string", enum: ["a", "b", "c"] },
              major: { type: "integer" },
              minor: { type: "integer" },
              access: str(/^[rwm]{1,3}$/),
            },
            ["allow"],
          ),
        ),
      }),
      namespaces: arr(
        obj(
          {
            type: { type: "string", enum: ["mount", "pid", "network", "uts", "ipc", "user", "cgroup"] },
            path: str(ABS),
          },
          ["type"],
        ),
      ),
      maskedPaths: arr(str(ABS)),
      readonlyPaths: arr(str(ABS)),
      rootfsPropagation: { type: "string", enum: ["private", "shared", "slave", "unbindable"] },
    }),
  },
  ["ociVersion"],
);

/** Every violation of `schema` by `value`, as "path: what is wrong"; empty when valid. */
export function checkSchema(value: unknown, schema: Schema = CONFIG_SCHEMA, path = "$"): string[] {
  const errs: string[] = [];
  switch (schema.type) {
    case "string":
      if (typeof value !== "string") return [`${path}: expected a string, got ${JSON.stringify(value)}`];
      if (schema.pattern && !schema.pattern.test(value))
        errs.push(`${path}: "${value}" does not match ${schema.pattern}`);
      if (schema.enum && !schema.enum.includes(value)) errs.push(`${path}: "${value}" is not one of ${schema.enum}`);
      return errs;
    case "integer":
      if (typeof value !== "number" || !Number.isInteger(value)) return [`${path}: expected an integer`];
      if (schema.min !== undefined && value < schema.min) errs.push(`${path}: ${value} < ${schema.min}`);
      if (schema.max !== undefined && value > schema.max) errs.push(`${path}: ${value} > ${schema.max}`);
      return errs;
    case "boolean":
      return typeof value === "boolean" ? [] : [`${path}: expected a boolean`];
    case "array":
      if (!Array.isArray(value)) return [`${path}: expected an array`];
      if (schema.minItems && value.length < schema.minItems) errs.push(`${path}: fewer than ${schema.minItems} items`);
      value.forEach((v, i) => {
        errs.push(...checkSchema(v, schema.items, `${path}[${i}]`));
      });
      return errs;
    case "object": {
      if (typeof value !== "object" || value === null || Array.isArray(value)) return [`${path}: expected an object`];
      const o = value as Record<string, unknown>;
      for (const r of schema.required ?? []) if (!(r in o)) errs.push(`${path}.${r}: required`);
      for (const [k, v] of Object.entries(o)) {
        const sub = schema.properties?.[k] ?? schema.values;
        if (!sub) errs.push(`${path}.${k}: unknown field`);
        else errs.push(...checkSchema(v, sub, `${path}.${k}`));
      }
      return errs;
    }
  }
}
