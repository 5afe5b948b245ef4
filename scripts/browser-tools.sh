#!/usr/bin/env bash
# Install headless Chromium and its WebDriver (Debian's chromium + chromium-driver) for the
# browser test of GET /ui (tests/e2e/test_ui_browser.py). Needs root and apt-get, as the
# container stage's scripts/container-tools.sh does; idempotent.
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  echo "browser-tools: ready ($(chromium --version 2>/dev/null || echo chromium))" >&2
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "browser-tools: need root and apt-get to install chromium and chromium-driver" >&2
  exit 3
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
echo "browser-tools: installed $(chromium --version 2>/dev/null || echo chromium)" >&2
