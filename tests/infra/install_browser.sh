#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests (tests/browser.py), ~20 s. Needs root
# (or sudo) and the Debian package mirror; does nothing when a chromium is on PATH.
set -euo pipefail
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
chromium --version
