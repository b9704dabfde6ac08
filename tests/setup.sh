#!/usr/bin/env bash
# Installs what eddy's tests and demo need, if missing, and builds the example components:
#   - the wasm32-wasip2 Rust target (the example processors are built for it)
#   - moto[server] from PyPI (a DynamoDB + DynamoDB Streams API on loopback)
#   - componentize-py from PyPI (builds the Python example processor)
#   - kubernetes-validate from PyPI (checks deploy/kubernetes against the Kubernetes schemas)
#   - prometheus and promtool from Debian's packages (the alerts' unit tests, and a real
#     Prometheus scraping eddy in a test)
#   - componentize-js from npm, in examples/js/every-verdict, exactly as its package-lock.json
#     says (`npm ci`; builds the JavaScript example; needs Node.js 18 or later and npm)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi
if ! command -v moto_server >/dev/null 2>&1 || ! python3 -c 'import moto.server' 2>/dev/null; then
  python3 -m pip install --quiet 'moto[server]'
fi
command -v moto_server >/dev/null 2>&1 || { echo "moto_server is not on PATH after installing moto[server]" >&2; exit 1; }
if ! command -v componentize-py >/dev/null 2>&1; then
  python3 -m pip install --quiet 'componentize-py==0.25.1'
fi
command -v componentize-py >/dev/null 2>&1 || { echo "componentize-py is not on PATH after installing it" >&2; exit 1; }
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  python3 -m pip install --quiet 'kubernetes-validate==1.37.0'
fi
command -v kubernetes-validate >/dev/null 2>&1 || { echo "kubernetes-validate is not on PATH after installing it" >&2; exit 1; }
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 \
      || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends prometheus >/dev/null; }
  fi
fi
command -v promtool >/dev/null 2>&1 || { echo "promtool is needed (Debian: apt-get install prometheus)" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || { echo "npm (Node.js 18 or later) is needed to build the JavaScript example processor" >&2; exit 1; }
if [ ! -x "$repo/examples/js/every-verdict/node_modules/.bin/componentize-js" ]; then
  # `npm ci` installs exactly the lock file and never rewrites it, so the checkout stays clean.
  (cd "$repo/examples/js/every-verdict" && npm ci --no-audit --no-fund --silent)
fi
for ws in examples/plugins tests/plugins; do
  (cd "$repo/$ws" && cargo build --quiet --release --target wasm32-wasip2)
done
