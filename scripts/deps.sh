#!/usr/bin/env bash
# scripts/deps.sh: installs the Debian 12 packages Leviathan needs to build and test (no-op when present).
set -euo pipefail
PACKAGES=(build-essential pkg-config meson ninja-build python3
  libglib2.0-dev libjson-glib-dev libsoup-3.0-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools gstreamer1.0-plugins-base
  gobject-introspection libgirepository1.0-dev python3-gi gir1.2-gstreamer-1.0
  # the tools' man pages, made from their --help at build time
  help2man
  # levtextgen's pipeline tests: speech → text → LLM (pocketsphinx) and LLM → speech (festival)
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-pocketsphinx pocketsphinx-en-us espeak-ng
  festival festvox-kallpc16k)
if [ "${1:-}" = "--sanitizers" ]; then
  PACKAGES+=(libclang-rt-14-dev clang)
  PACKAGES+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)   # cross builds: scripts/cross.sh adds the rest
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "deps: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
