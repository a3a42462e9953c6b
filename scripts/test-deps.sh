#!/usr/bin/env bash
# Installs the Debian packages the integration tests drive (the real registry,
# skopeo, umoci, containerd/ctr, runc, busybox-static, ...) when they are missing.
# Needs root for apt-get; without root it only reports what is missing.
set -euo pipefail
PKGS=(docker-registry skopeo umoci containerd runc busybox-static debootstrap
      zstd pigz libisal2 apache2-utils openssl curl jq attr util-linux python3 time
      golang-github-containerd-containerd-dev podman iproute2)
missing=()
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
