/**
 * Our .proto files (written from the wire facts) against containerd's own, as
 * shipped by the Debian package golang-github-containerd-containerd-dev: for
 * every message we define, the same fields (names, numbers, types, labels);
 * for every enum the same values; for every service method the same types and
 * streaming flags. Wire compatibility depends on exactly these.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import * as protoLoader from "@grpc/proto-loader";
import { PROTO_FILES, packageDefinition, SERVICES } from "../../src/services/proto.ts";

const GOCODE = "/usr/share/gocode/src";
const API = join(GOCODE, "github.com/containerd/containerd/api");

/** Our file path → containerd's path under api/. */
function upstreamPath(ours: string): string {
  return join(API, ours.replace(/^containerd\//, ""));
}

interface Field {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName?: string;
}

// biome-ignore lint/suspicious/noExplicitAny: proto-loader's definitions are loosely typed
type Loose = any;

function fieldsOf(def: Loose): Field[] {
  const t = def.type as { field: Field[] };
  return t.field
    .map((f) => ({ name: f.name, number: f.number, label: f.label, type: f.type, typeName: f.typeName || undefined }))
    .sort((a, b) => a.number - b.number);
}

function enumValues(def: Loose): { name: string; number: number }[] {
  const t = def.type as { value: { name: string; number: number }[] };
  return t.value.map((v) => ({ name: v.name, number: v.number })).sort((a, b) => a.number - b.number);
}

test("our protos match containerd's (Debian golang-github-containerd-containerd-dev)", () => {
  assert.ok(
    existsSync(API),
    `${API} is missing: install golang-github-containerd-containerd-dev (scripts/test-deps.sh)`,
  );
  const ours = packageDefinition();
  const theirs = protoLoader.loadSync(PROTO_FILES.map(upstreamPath), {
    keepCase: true,
    includeDirs: [GOCODE, join(GOCODE, "github.com/gogo/protobuf"), join(GOCODE, "github.com/gogo/googleapis")],
  });
  let messages = 0;
  let methods = 0;
  for (const [name, def] of Object.entries(ours) as [string, Loose][]) {
    if (name.startsWith("google.protobuf.")) continue;
    const up = theirs[name];
    assert.ok(up, `${name}: not defined by containerd`);
    if ("format" in def && def.format.includes("DescriptorProto") && !def.format.includes("Enum")) {
      assert.deepEqual(fieldsOf(def), fieldsOf(up), `${name}: fields differ`);
      messages++;
    } else if ("format" in def) {
      assert.deepEqual(enumValues(def), enumValues(up), `${name}: enum values differ`);
    } else {
      const svc = def as Record<string, Loose>;
      const upSvc = up as Record<string, Loose>;
      assert.deepEqual(Object.keys(svc).sort(), Object.keys(upSvc).sort(), `${name}: methods differ`);
      for (const [m, md] of Object.entries(svc)) {
        const u = upSvc[m];
        assert.equal(md.path, u.path, `${name}.${m}: path`);
        assert.equal(md.requestStream, u.requestStream, `${name}.${m}: request streaming`);
        assert.equal(md.responseStream, u.responseStream, `${name}.${m}: response streaming`);
        assert.equal(md.requestType.type.name, u.requestType.type.name, `${name}.${m}: request type`);
        assert.equal(md.responseType.type.name, u.responseType.type.name, `${name}.${m}: response type`);
        assert.deepEqual(fieldsOf(md.requestType), fieldsOf(u.requestType), `${name}.${m}: request fields`);
        assert.deepEqual(fieldsOf(md.responseType), fieldsOf(u.responseType), `${name}.${m}: response fields`);
        methods++;
      }
    }
  }
  // every service the daemon serves was compared
  for (const s of Object.values(SERVICES)) assert.ok(ours[s], `${s} is loaded`);
  assert.ok(messages >= 80, `compared only ${messages} messages`);
  assert.equal(methods, 43, `compared ${methods} methods`);
});
