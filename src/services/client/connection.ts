/**
 * A connection to a containerd-compatible daemon (ours or containerd itself)
 * on a unix socket: one channel shared by the service clients, the namespace
 * sent as `containerd-namespace` metadata on every call, and a connect
 * deadline so a dead socket fails with one clear line instead of hanging.
 */
import * as grpc from "@grpc/grpc-js";
import { UnavailableError } from "../../errors.ts";
import { clientConstructor, type ServiceKey } from "../proto.ts";

export const NAMESPACE_KEY = "containerd-namespace";
const DEFAULT_CONNECT_TIMEOUT = 10_000;
const MAX_MESSAGE = 16 << 20;

export interface ConnectOptions {
  namespace?: string;
  /** How long to wait for the socket to accept (ms). */
  connectTimeout?: number;
}

export interface Connection {
  readonly address: string;
  readonly namespace: string;
  client(key: ServiceKey): grpc.Client;
  metadata(): grpc.Metadata;
  /** Resolves once the channel is connected, or fails with UnavailableError. */
  ready(): Promise<void>;
  close(): void;
}

/** `unix:` target for a path (or an address that already has a scheme). */
export function target(address: string): string {
  if (/^(unix|unix-abstract|dns|ipv4|ipv6):/.test(address)) return address;
  return `unix:${address}`;
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
      const md = new grpc.Metadata();
      md.set(NAMESPACE_KEY, namespace);
      return md;
    },
    ready() {
      readyP ??= new Promise<void>((resolve, reject) => {
        first.waitForReady(Date.now() + timeout, (err) => {
          if (err) {
            reject(
              new UnavailableError(
                `cannot connect to the daemon at ${address} within ${Math.round(timeout / 100) / 10}s: ${err.message}`,
              ),
            );
          } else resolve();
        });
      });
      return readyP;
    },
    close() {
      for (const c of clients.values()) c.close();
    },
  };
}
