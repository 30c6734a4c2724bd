#!/usr/bin/env bash
# Debian packages the test suite needs (real Prometheus, node_exporter, headless Chromium).
# Installs only what is missing; needs root (CI runs as root). Safe to run repeatedly.
set -euo pipefail

PACKAGES=(
  chromium
  chromium-driver
  prometheus
  prometheus-node-exporter
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: missing Debian packages: ${missing[*]} (run as root: apt-get install -y ${missing[*]})" >&2
  exit 0
fi
echo "system-deps: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
