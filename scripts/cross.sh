#!/usr/bin/env bash
# scripts/cross.sh: cross-builds Leviathan for 64-bit (aarch64) or 32-bit (armhf) ARM Linux with Debian's cross
# compilers and multiarch -dev packages (installed when missing), optionally running tests under qemu-user.
# Usage: scripts/cross.sh aarch64|armhf [--test [TEST...]]   (build in build-aarch64 / build-armhf; --test alone runs
#   the suite's default cross selection, see CROSS_TESTS below; QEMU_CPU=cortex-a53 etc. picks the emulated core)
# Needs root or sudo for apt-get once. The :arm64/:armhf GLib, json-glib and GStreamer -dev packages are Multi-Arch:
# same and install beside the native ones; libgstreamer-plugins-base1.0-dev is not (it would replace the native one)
# and Leviathan does not need it, so it is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  aarch64) arch=arm64 triplet=aarch64-linux-gnu ;;
  armhf) arch=armhf triplet=arm-linux-gnueabihf ;;
  *) echo "usage: scripts/cross.sh aarch64|armhf [--test [TEST...]]" >&2; exit 2 ;;
esac
target=$1
shift
run_tests=0
if [ "${1:-}" = "--test" ]; then
  run_tests=1
  shift
fi
# the tests a cross build runs by default: kernels, the engine against its fixture references, the element with
# gst-check (arm64) and the command-line tests (arm64); about 10 minutes for arm64 under qemu on one core
if [ "$target" = aarch64 ]; then
  CROSS_TESTS=(qkernels kernels sampler engine loader default_model tokenizer bpe chat gguf noalloc element output cli)
else
  CROSS_TESTS=(qkernels kernels sampler loader engine)
fi

PACKAGES=(gcc-$triplet libc6-dev-$arch-cross qemu-user meson ninja-build pkgconf python3
  libc6:$arch libglib2.0-dev:$arch libjson-glib-dev:$arch libgstreamer1.0-dev:$arch
  gstreamer1.0-plugins-base:$arch)   # appsrc for the element tests
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
  echo "cross: dpkg --add-architecture $arch" >&2
  $SUDO dpkg --add-architecture "$arch"
  $SUDO apt-get update -qq
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "cross: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

dir=build-$target
opts=(--cross-file "cross/$triplet.ini" -Dwerror=true -Dintrospection=disabled)
if [ -f "$dir/build.ninja" ]; then
  meson setup --reconfigure "$dir" "${opts[@]}" >/dev/null
else
  meson setup "$dir" "${opts[@]}" >/dev/null
fi
ninja -C "$dir" -j"${CROSS_JOBS:-2}"
echo "cross: built $dir ($(file -b "$dir/tools/levrun" | cut -d, -f1-2))"
if [ "$run_tests" = 1 ]; then
  [ $# -gt 0 ] && CROSS_TESTS=("$@")
  # emulation is 10-40 times slower than the host: the suite's timeouts scaled accordingly
  meson test -C "$dir" --print-errorlogs --num-processes "${CROSS_JOBS:-2}" --timeout-multiplier 4 "${CROSS_TESTS[@]}"
fi
