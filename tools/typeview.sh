#!/bin/sh
# Build a symlink view of the `arbsphere` import namespace for mypy.
# setuptools installs the design card's top-level folders (rig/, adapters/, ...) as
# arbsphere.rig, arbsphere.adapters, ... via package-dir; mypy cannot follow that mapping,
# so we lay the same tree out with symlinks: <view>/arbsphere/{*.py, rig -> ../../rig, ...}.
set -eu
view=${1:-build/typeview}
top=$(pwd)
rm -rf "$view"
mkdir -p "$view/arbsphere"
for f in "$top"/arbsphere/*; do
    ln -s "$f" "$view/arbsphere/$(basename "$f")"
done
for pkg in rig firmware_interfaces adapters coordinator kpi; do
    ln -s "$top/$pkg" "$view/arbsphere/$pkg"
done
# the benchmarks are checked too (they import the arbsphere namespace above)
ln -s "$top/benchmarks" "$view/benchmarks"
