#!/usr/bin/env bash
# Builds .gpu/ (ignored): everything scripts/gpu-check.sh needs to run the webgpu compute benchmark on a machine that
# has a GPU but no Node, no npm and no network (Linux x86-64, glibc):
#   .gpu/bundle.tar.xz  node (this machine's binary, plus the libstdc++/libgcc_s it links, used only if the remote
#                       lacks them), package.json, dist/ and the node_modules files the benchmark opens
#   .gpu/debs/*.deb     libvulkan1 (the Vulkan loader) and libglvnd (libglvnd0, libgl1, libglx0, libegl1, libgles2,
#                       libopengl0): NVIDIA's Vulkan driver (libGLX_nvidia.so.0) needs libglvnd's dispatch library
#   .gpu/MANIFEST       what is inside and how it was made
# The node_modules files are those the benchmark actually opens (traced with strace while it selects the wasm and
# webgpu backends and imports every module), so the bundle stays small: about 30 MiB.
# Usage: scripts/gpu-bundle.sh [--no-build]   (needs: the optional webgpu packages installed, strace, xz, apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="$root/.gpu"

die() { echo "gpu-bundle: $*" >&2; exit 1; }
command -v strace >/dev/null || die "strace is needed to find the files the benchmark opens (apt-get install strace)"
command -v xz >/dev/null || die "xz is needed (apt-get install xz-utils)"
[ -f node_modules/webgpu/package.json ] || die "the optional package webgpu is not installed here (npm install)"
[ -f node_modules/@tensorflow/tfjs-backend-webgpu/package.json ] || die "@tensorflow/tfjs-backend-webgpu is not installed here (npm install)"
[ "$(uname -m)" = x86_64 ] || die "builds an x86-64 bundle; run it on an x86-64 machine"
node=$(command -v node)

if [ "${1:-}" != "--no-build" ]; then npm run build >/dev/null; fi
[ -f dist/bench/webgpu.bench.js ] || die "dist/bench/webgpu.bench.js missing (npm run build)"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/w/bin" "$stage/w/lib"

# 1. The files under node_modules the benchmark opens: imports and the backends' binaries (wasm, dawn.node).
trace="$stage/trace"
XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} strace -f -qq -e trace=openat,open -o "$trace" \
  "$node" dist/bench/webgpu.bench.js --which '' --check >/dev/null 2>"$stage/bench.err" \
  || die "the traced benchmark run failed: $(tail -n 3 "$stage/bench.err")"
grep -v ENOENT "$trace" | grep -oE "\"$root/node_modules/[^\"]+\"" | tr -d '"' | sort -u | while read -r f; do
  [ -f "$f" ] || continue
  rel=${f#"$root"/}
  mkdir -p "$stage/w/$(dirname "$rel")"
  cp "$f" "$stage/w/$rel"
done
# Every package.json on the way (module type and entry points are read from them even when strace missed a read).
find node_modules -name package.json -path '*node_modules/*' | while read -r p; do
  d=$(dirname "$p")
  if [ -d "$stage/w/$d" ]; then cp "$p" "$stage/w/$p"; fi
done
[ -f "$stage/w/node_modules/webgpu/dist/linux-x64/dawn.node" ] || die "the trace did not open dawn.node: is a WebGPU adapter available here (lavapipe)?"
[ -n "$(find "$stage/w/node_modules/@tensorflow/tfjs-backend-wasm" -name '*.wasm' | head -n1)" ] || die "the trace did not open the tfjs wasm binary"

# 2. The project: compiled code and the package manifest (ESM: "type": "module"). The Python reference
#    (bench/torch_train.py) travels with the repository itself.
cp -r dist "$stage/w/dist"
cp package.json "$stage/w/"

# 3. Node, and the C++ runtime it links (used on the remote only where the system's is missing or too old).
cp "$node" "$stage/w/bin/node"
for lib in libstdc++.so.6 libgcc_s.so.1; do
  src=$(ldd "$node" | awk -v l="$lib" '$1 == l { print $3 }')
  if [ -n "$src" ]; then cp -L "$src" "$stage/w/lib/$lib"; fi
done

rm -rf "$out"
mkdir -p "$out/debs"
tar -C "$stage/w" -cf - . | xz -T0 -6 >"$out/bundle.tar.xz"

# 4. The Vulkan loader as a Debian package, for amd64, whatever this machine is.
lists=/tmp/amd64
mkdir -p "$lists/partial"
o="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$lists"
# shellcheck disable=SC2086
apt-get $o update -qq >/dev/null 2>&1 || echo "gpu-bundle: apt-get update failed; trying the download with the lists there are" >&2
# shellcheck disable=SC2086
(cd "$out/debs" && apt-get $o download libvulkan1 libglvnd0 libgl1 libglx0 libegl1 libgles2 libopengl0 >/dev/null) || die "apt-get download of the Vulkan loader and libglvnd failed"

{
  echo "built $(date -u +%FT%TZ) on $(uname -srm) from $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "node $("$node" --version); webgpu $(node -p "require('./node_modules/webgpu/package.json').version"); tfjs-backend-webgpu $(node -p "require('./node_modules/@tensorflow/tfjs-backend-webgpu/package.json').version")"
  echo "files in bundle: $(tar -tJf "$out/bundle.tar.xz" | grep -vc '/$')"
  ls -l "$out/bundle.tar.xz" "$out"/debs/*.deb
} >"$out/MANIFEST"

# The bundle travels in the working tree; git must never see it.
exclude="$(git rev-parse --git-common-dir)/info/exclude"
grep -qxF '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >>"$exclude"

cat "$out/MANIFEST"
du -sh "$out"
