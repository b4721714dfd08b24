#!/usr/bin/env bash
# Builds native/build/lancam.node with one g++ call against the system OpenCV 4.
# No node-gyp, no downloads: headers come from node_modules. Skips the build when
# the addon is newer than every source and this script.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
out="$here/build/lancam.node"
sources=("$here"/*.cc)
inputs=("${sources[@]}" "$here"/*.h "$here/build.sh")

if [[ -f "$out" ]]; then
  stale=0
  for f in "${inputs[@]}"; do
    if [[ "$f" -nt "$out" ]]; then stale=1; break; fi
  done
  if [[ $stale -eq 0 ]]; then
    echo "addon up to date: $out"
    exit 0
  fi
fi

if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists opencv4; then
  echo "error: pkg-config cannot find opencv4; install libopencv-dev: sudo apt-get install libopencv-dev" >&2
  exit 1
fi
# The TurboJPEG API encodes raw YUV frames without a detour through BGR.
if ! pkg-config --exists libturbojpeg; then
  echo "error: pkg-config cannot find libturbojpeg; install libturbojpeg0-dev: sudo apt-get install libturbojpeg0-dev" >&2
  exit 1
fi
# libopus decodes the viewer's audio.
if ! pkg-config --exists opus; then
  echo "error: pkg-config cannot find opus; install libopus-dev: sudo apt-get install libopus-dev" >&2
  exit 1
fi
addon_api="$root/node_modules/node-addon-api"
api_headers="$root/node_modules/node-api-headers/include"
if [[ ! -f "$addon_api/napi.h" || ! -f "$api_headers/node_api.h" ]]; then
  echo "error: node-addon-api / node-api-headers missing under node_modules; run: bun install" >&2
  exit 1
fi
cxx="${CXX:-g++}"
if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "error: no C++ compiler ($cxx); install one: sudo apt-get install g++" >&2
  exit 1
fi

# Only the modules the addon uses: `pkg-config --libs opencv4` lists all ~50,
# and each one is loaded (with its dependencies) at every start.
modules=(core imgproc imgcodecs videoio highgui)
libs=()
for m in "${modules[@]}"; do libs+=("-lopencv_$m"); done

mkdir -p "$here/build"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
start=$(date +%s.%N)
# shellcheck disable=SC2046 # pkg-config output is a list of flags
"$cxx" -O2 -shared -fPIC -std=c++17 -Wall -Wextra -Wno-unused-parameter \
  -DNAPI_VERSION=8 -DNODE_ADDON_API_CPP_EXCEPTIONS -DNODE_ADDON_API_CPP_EXCEPTIONS_ALL \
  -I"$addon_api" -I"$api_headers" $(pkg-config --cflags opencv4 libturbojpeg opus) \
  "${sources[@]}" \
  -o "$tmp" \
  $(pkg-config --libs-only-L opencv4) "${libs[@]}" $(pkg-config --libs libturbojpeg opus) -ldl
mv "$tmp" "$out"
elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "built $out in ${elapsed}s (OpenCV $(pkg-config --modversion opencv4))"
