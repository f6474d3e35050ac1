#!/usr/bin/env bash
# The system packages the napari GUI tests need on a bare Debian or Ubuntu machine: Xvfb (a virtual
# display, started by pytest-xvfb) and the X/GL libraries of Qt's xcb platform plugin. Run as root
# (or with sudo); .ci/run runs it too. Without them the GUI tests are skipped, the rest still run.
set -euo pipefail
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq xvfb libgl1 libegl1 libgl1-mesa-dri libxkbcommon-x11-0 libxcb-icccm4 \
    libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 libxcb-render-util0 libxcb-randr0 libxcb-shape0 \
    libxcb-xfixes0 libxcb-cursor0 libfontconfig1 libdbus-1-3 > /dev/null
