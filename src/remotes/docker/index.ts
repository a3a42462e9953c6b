/** The OCI distribution registry client: createResolver and what it is built from. */

export { MAX_MANIFEST_SIZE } from "../../content/helpers.ts";
export { Authorizer, splitUser } from "./auth.ts";
export { findHostDirectory, readCertsDir, systemHostsDirs } from "./certsd.ts";
export { type Challenge, mergeScopes, parseChallenges, repositoryScope } from "./challenge.ts";
export { RegistryClient, type RegistryResponse, type RequestSpec } from "./client.ts";
export { type ClientKeyPair, clientKeyPairs } from "./client-certs.ts";
export { describeErrorBody, httpError, networkError, parseErrorBody } from "./errors.ts";
export { DockerFetcher, isManifestType, type Repository } from "./fetcher.ts";
export { type Capability, type HostsOptions, type RegistryHost, registryHosts } from "./hosts.ts";
export { DEFAULT_STALL_TIMEOUT_MS, type RegistryOptions } from "./options.ts";
export { type ProxyConfig, ProxyRules, proxyConfigFromEnv } from "./proxy.ts";
export { type BlobPushOptions, DockerPusher, type PushOptions } from "./pusher.ts";
export { type Referrers, referrersTag } from "./referrers.ts";
export { createResolver, type DockerResolver } from "./resolver.ts";
export { backoffDelay, isRetryableStatus, parseRetryAfter } from "./retry.ts";
