#!/usr/bin/env bash
# Makes sure headless Chromium is installed for the /status page's browser test: installs Debian's chromium package
# when no Chromium is on the PATH. Set VIADUCT_CHROMIUM to a browser binary to use that one instead.
set -euo pipefail

if [[ -n "${VIADUCT_CHROMIUM:-}" ]]; then
  echo "chromium: using $VIADUCT_CHROMIUM"
  exit 0
fi
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then
    echo "chromium: $(command -v "$b")"
    exit 0
  fi
done

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
echo "chromium: not installed; installing from Debian's packages"
as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
echo "chromium: $(command -v chromium)"
