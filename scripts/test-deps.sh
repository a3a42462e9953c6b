#!/usr/bin/env bash
# Installs the Debian packages the integration tests drive (the real registry,
# skopeo, umoci, containerd/ctr, runc, busybox-static, squid as a forward proxy, ...) when they are missing.
# Needs root for apt-get; without root it only reports what is missing.
set -euo pipefail
PKGS=(docker-registry skopeo umoci containerd runc busybox-static debootstrap
      zstd pigz libisal2 apache2-utils openssl curl jq attr util-linux python3 time
      # containerd's own test suites (test/conformance): Debian's Go and the Go
      # sources the suites program imports, built offline in GOPATH mode
      golang-go golang-github-containerd-containerd-dev golang-github-containerd-continuity-dev
      golang-github-containerd-ttrpc-dev golang-github-gogo-protobuf-dev
      golang-github-golang-protobuf-1-3-dev golang-github-google-go-cmp-dev
      golang-github-gotestyourself-gotest.tools-dev golang-github-moby-sys-dev
      golang-github-opencontainers-go-digest-dev golang-github-opencontainers-image-spec-dev
      golang-github-pkg-errors-dev golang-github-sirupsen-logrus-dev golang-golang-x-net-dev
      golang-golang-x-sys-dev golang-golang-x-text-dev golang-google-genproto-dev
      golang-google-grpc-dev golang-google-protobuf-dev
      # a forward proxy for the HTTP(S)_PROXY tests
      squid
      # dist serve's real clients (podman) and the fleet's network namespaces
      podman iproute2)
missing=()
# tmux: a real terminal for the progress table's tests; uidmap: newuidmap/newgidmap for rootless run
PKGS+=(tmux uidmap)
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "test-deps: missing Debian packages (install as root): ${missing[*]}" >&2
  exit 1
fi
echo "test-deps: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
