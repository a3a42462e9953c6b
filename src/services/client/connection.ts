/**
 * A connection to a containerd-compatible daemon (ours or containerd itself)
 * on a unix socket: one channel shared by the service clients, the namespace
 * sent as `containerd-namespace` metadata on every call, and a connect
 * deadline so a dead socket fails with one clear line instead of hanging.
 */
import { randomBytes } from "node:crypto";
import { accessSync, constants } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { PermissionDeniedError, wrapError } from "../../errors.ts";
import { clientConstructor, LEASE_KEY, NAMESPACE_KEY, type ServiceKey } from "../proto.ts";

/** How long a process lease protects its content if the process dies before releasing it. */
const LEASE_EXPIRY_MS = 60 * 60_000;
const DEFAULT_CONNECT_TIMEOUT = 10_000;
const MAX_MESSAGE = 16 << 20;

export interface ConnectOptions {
  namespace?: string;
  /** How long to wait for the socket to accept (ms). */
  connectTimeout?: number;
  /**
   * Hold a lease for the connection's life (sent as containerd-lease on every
   * call), so containerd's GC cannot collect what this process writes before
   * it is referenced; released by close().
   */
  lease?: boolean;
}

export interface Connection {
  readonly address: string;
  readonly namespace: string;
  client(key: ServiceKey): grpc.Client;
  metadata(): grpc.Metadata;
  /** Resolves once the channel is connected, or fails with UnavailableError. */
  ready(): Promise<void>;
  /** Releases the lease (if any) and closes the channel. */
  close(): Promise<void>;
}

/** `unix:` target for a path (or an address that already has a scheme). */
export function target(address: string): string {
  if (/^(unix|unix-abstract|dns|ipv4|ipv6):/.test(address)) return address;
  return `unix:${address}`;
}

/**
 * A socket path this user may not connect to (connect(2) needs write permission on it):
 * refused at once, where the channel would retry until the connect timeout.
 */
function socketDenied(address: string): Error | undefined {
  if (/^(?!unix:)[a-z-]+:/.test(address)) return undefined;
  const path = address.replace(/^unix:(\/\/)?/, "");
  try {
    accessSync(path, constants.W_OK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EACCES") return undefined;
    return new PermissionDeniedError(
      `cannot connect to the daemon at ${address}: permission denied (the socket is its owner's, or its group's when the daemon was started with --group)`,
      { cause: err },
    );
  }
  return undefined;
}

export function connect(address: string, opts: ConnectOptions = {}): Connection {
  const namespace = opts.namespace || "default";
  const timeout = opts.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT;
  const options: grpc.ChannelOptions = {
    "grpc.max_receive_message_length": MAX_MESSAGE,
    "grpc.max_send_message_length": MAX_MESSAGE,
  };
  const first = new (clientConstructor("version"))(target(address), grpc.credentials.createInsecure(), options);
  const channel = first.getChannel();
  const clients = new Map<ServiceKey, grpc.Client>([["version", first]]);
  let readyP: Promise<void> | undefined;
  let lease: string | undefined;
  const md = (withLease: boolean) => {
    const m = new grpc.Metadata();
    m.set(NAMESPACE_KEY, namespace);
    if (withLease && lease) m.set(LEASE_KEY, lease);
    return m;
  };
  const leases = () => {
    let c = clients.get("leases");
    if (!c) {
      c = new (clientConstructor("leases"))(target(address), grpc.credentials.createInsecure(), {
        ...options,
        channelOverride: channel,
      });
      clients.set("leases", c);
    }
    return c as unknown as Record<
      string,
      (req: unknown, md: grpc.Metadata, cb: (err: grpc.ServiceError | null) => void) => void
    >;
  };
  const takeLease = () =>
    new Promise<void>((resolve) => {
      const id = `dist-${process.pid}-${randomBytes(6).toString("hex")}`;
      const expire = new Date(Date.now() + LEASE_EXPIRY_MS).toISOString();
      leases().Create({ id, labels: { "containerd.io/gc.expire": expire } }, md(false), (err) => {
        // a daemon without leases just means no protection is needed or possible
        if (!err) lease = id;
        resolve();
      });
    });
  return {
    address,
    namespace,
    client(key) {
      let c = clients.get(key);
      if (!c) {
        const Ctor = clientConstructor(key);
        c = new Ctor(target(address), grpc.credentials.createInsecure(), { ...options, channelOverride: channel });
        clients.set(key, c);
      }
      return c;
    },
    metadata() {
      return md(true);
    },
    ready() {
      readyP ??= new Promise<void>((resolve, reject) => {
        const denied = socketDenied(address);
        if (denied) {
          reject(denied);
          return;
        }
        first.waitForReady(Date.now() + timeout, (err) => {
          if (err) {
            reject(
              wrapError(
                err,
                `cannot connect to the daemon at ${address} within ${Math.round(timeout / 100) / 10}s`,
                "Unavailable",
              ),
            );
          } else resolve();
        });
      }).then(() => (opts.lease ? takeLease() : undefined));
      return readyP;
    },
    async close() {
      const id = lease;
      lease = undefined;
      if (id) {
        await new Promise<void>((resolve) => leases().Delete({ id, sync: false }, md(false), () => resolve()));
      }
      for (const c of clients.values()) c.close();
    },
  };
}
