#!/usr/bin/env bash
# Browser for the portal's Playwright tests: Debian's Chromium at /usr/bin/chromium (no `playwright install`).
# Idempotent: does nothing when /usr/bin/chromium is already there. Needs root (CI runs as root) or sudo.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "portal_deps: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
echo "portal_deps: installed $(/usr/bin/chromium --version)"
