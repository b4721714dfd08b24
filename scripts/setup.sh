#!/usr/bin/env bash
# Installs what lancam needs, skipping whatever is already there:
# Debian packages, Bun, node modules, the OpenCV addon.
#   bash scripts/setup.sh          # what the server and client need
#   bash scripts/setup.sh --test   # plus what the tests need (Xvfb, xdotool, ImageMagick, GStreamer test elements,
#                                  the classroom program's Python OpenCV, Chromium for the browser view,
#                                  promtool from the prometheus package to lint /metrics,
#                                  stress-ng for scripts/stress-test.sh,
#                                  iptables for the loss and firewall tests in network namespaces,
#                                  PulseAudio for the tests of pulse: audio capture and output)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------
pkgs=(libopencv-dev libturbojpeg0-dev libopus-dev ffmpeg g++ pkg-config)
if [ "${1:-}" = "--test" ]; then
  pkgs+=(xvfb xauth xdotool imagemagick gstreamer1.0-plugins-base python3-opencv python3-numpy chromium prometheus stress-ng iptables pulseaudio pulseaudio-utils)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    say "missing system packages: ${missing[*]}; this script installs them only on Debian/Ubuntu (see README for other systems)"
    exit 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    say "missing system packages: ${missing[*]}"
    say "run:  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
    exit 1
  fi
  say "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
  say "system packages present"
fi

# --- Bun -------------------------------------------------------------------
if ! command -v bun >/dev/null; then
  say "installing Bun from npm"
  if ! npm install -g bun@1.4.5 >/dev/null 2>&1; then
    # No rights for a global install: keep Bun inside the checkout instead.
    npm install --prefix .cache/bun bun@1.4.5 >/dev/null
  fi
fi
if ! command -v bun >/dev/null && [ -x .cache/bun/node_modules/.bin/bun ]; then
  export PATH="$PWD/.cache/bun/node_modules/.bin:$PATH"
fi
command -v bun >/dev/null || { say "Bun could not be installed; install it with: npm install -g bun"; exit 1; }
say "bun $(bun --version)"

# --- node modules ----------------------------------------------------------
stamp=node_modules/.lancam-installed
if [ ! -f "$stamp" ] || [ bun.lock -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  say "installing node modules"
  # ffmpeg-static is optional: its download fails offline and bun leaves it out.
  bun install --frozen-lockfile >/dev/null
  touch "$stamp"
else
  say "node modules present"
fi

# --- the OpenCV addon ------------------------------------------------------
bash native/build.sh
