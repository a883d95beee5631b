#!/usr/bin/env bash
# The GPU check, run from the repository root on a GPU machine without Node or network, with .gpu/ made by
# scripts/gpu-bundle.sh: unpacks the bundle, installs the Vulkan loader from .gpu/debs when none is found (root),
# points the loader at the NVIDIA driver's manifest when no other driver is found, prints the WebGPU adapter, runs
# the webgpu compute benchmark (dcae-small and vit-small step times, adapter named) with the webgpu-vs-wasm step
# comparison, and, when python3 has torch with CUDA, the same networks' steps in PyTorch on CUDA.
# Everything printed also goes to $OUT/gpu.log (or ./gpu.log without $OUT). Each part has a time limit; the whole
# stays under 6 minutes.
# Usage: scripts/gpu-check.sh [--steps N] [--which dcae-small,vit-small] [--work DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
steps=5
which=dcae-small,vit-small
work=${TMPDIR:-/tmp}/wellspring-gpu
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --which) which=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    *) echo "gpu-check: unknown option $1 (expected --steps N, --which LIST, --work DIR)" >&2; exit 2 ;;
  esac
done
log="${OUT:-$repo}/gpu.log"
mkdir -p "$(dirname "$log")"
exec > >(tee -a "$log") 2>&1
started=$(date +%s)
say() { echo "== gpu-check [$(( $(date +%s) - started ))s] $*"; }

[ -f .gpu/bundle.tar.xz ] || { say "no .gpu/bundle.tar.xz: run scripts/gpu-bundle.sh first (on a machine with Node)"; exit 1; }
say "bundle: $(head -n 2 .gpu/MANIFEST | tr '\n' ' ')"
say "machine: $(uname -srm); $(nproc) cores; $(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)"

rm -rf "$work"
mkdir -p "$work"
tar -C "$work" -xJf .gpu/bundle.tar.xz || { say "unpacking the bundle failed"; exit 1; }
mkdir -p "$work/bench"
cp bench/torch_train.py bench/torch_env.py "$work/bench/"
export PATH="$work/bin:$PATH"
if ! node -e 0 2>/dev/null; then
  export LD_LIBRARY_PATH="$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  say "node needs the bundled C++ runtime here: using $work/lib"
fi
node -e 0 || { say "the bundled node does not run here: $(node -e 0 2>&1 | head -n 2)"; exit 1; }
say "node $(node --version)"

# libglvnd: NVIDIA's Vulkan driver (libGLX_nvidia.so.0) needs its dispatch library (libGLdispatch), without which
# the loader reports "Could not get 'vkCreateInstance' via 'vk_icdGetInstanceProcAddr'" (seen on an H200 machine).
if [ "$(id -u)" = 0 ] && command -v dpkg >/dev/null && ! ldconfig -p 2>/dev/null | grep -q 'libGLdispatch\.so\.0'; then
  for deb in .gpu/debs/libglvnd0_*.deb .gpu/debs/libgl1_*.deb .gpu/debs/libglx0_*.deb .gpu/debs/libegl1_*.deb .gpu/debs/libgles2_*.deb .gpu/debs/libopengl0_*.deb; do
    [ -f "$deb" ] && dpkg -x "$deb" /
  done
  ldconfig
  say "installed libglvnd from .gpu/debs"
fi
# The Vulkan loader: the system's, else the bundled Debian package (root only).
have_loader() { ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' || ls /usr/lib/x86_64-linux-gnu/libvulkan.so.1 >/dev/null 2>&1; }
if ! have_loader; then
  deb=$(ls .gpu/debs/libvulkan1_*.deb 2>/dev/null | head -n 1)
  if [ "$(id -u)" = 0 ] && [ -n "$deb" ] && command -v dpkg >/dev/null; then
    dpkg -x "$deb" / && ldconfig
    say "installed the Vulkan loader from $deb"
  elif [ -n "$deb" ]; then
    mkdir -p "$work/vulkan" && (cd "$work/vulkan" && ar x "$repo/$deb" && tar -xf data.tar.* 2>/dev/null)
    export LD_LIBRARY_PATH="$work/vulkan/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    say "using the Vulkan loader from $deb without installing it (not root)"
  fi
fi
have_loader || [ -e "$work/vulkan/usr/lib/x86_64-linux-gnu/libvulkan.so.1" ] || say "WARNING: no Vulkan loader could be had"

# A driver: the loader's usual places, else NVIDIA's manifest where the container runtime mounted it.
drivers=$(ls /etc/vulkan/icd.d/*.json /usr/share/vulkan/icd.d/*.json /usr/local/share/vulkan/icd.d/*.json 2>/dev/null | tr '\n' ' ')
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && ! grep -qls nvidia $drivers /dev/null && [ -f "$nvidia_icd" ]; then
  export VK_DRIVER_FILES=$nvidia_icd
  say "VK_DRIVER_FILES=$nvidia_icd (no NVIDIA manifest in the loader's folders; found: ${drivers:-none})"
fi
for icd in ${VK_DRIVER_FILES:-$drivers}; do
  lib=$(sed -nE 's/.*"library_path": *"([^"]+)".*/\1/p' "$icd" 2>/dev/null)
  found=$(ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 == l { print $NF; exit }')
  say "driver manifest $icd -> $lib ($( [ -n "$found" ] && echo "found: $found" || echo 'not in the linker cache' ))"
done
[ -d /usr/local/nvidia/lib64 ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/usr/local/nvidia/lib64"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

cd "$work"
say "WebGPU adapter:"
timeout 60 node --input-type=module -e "
  import { findWebgpuAdapter } from './dist/src/models/backend/webgpu.js';
  try { console.log(JSON.stringify(await findWebgpuAdapter())); } catch (e) { console.log('NO ADAPTER: ' + e.message); process.exitCode = 1; }
" 2>&1 | grep -v 'artificially reduced'
adapter_ok=${PIPESTATUS[0]}

if [ "$adapter_ok" = 0 ]; then
  say "webgpu compute benchmark ($steps steps after a warm-up) and the webgpu-vs-wasm step comparison:"
  torch=cpu
  if command -v python3 >/dev/null && timeout 60 python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    torch=cuda
  else
    say "no python3 with torch on CUDA: PyTorch figures skipped"
  fi
  # --backends webgpu: the wasm step times are CPU figures measured elsewhere; --check still runs wasm for one step.
  timeout 270 node dist/bench/webgpu.bench.js --which "$which" --steps "$steps" --check \
    --torch-device "$torch" 2>&1 | grep -v 'artificially reduced'
  status=${PIPESTATUS[0]}
  [ "$status" = 124 ] && say "the benchmark ran past its 270 s limit"
else
  status=1
  say "no WebGPU adapter: benchmark not run"
fi
say "done, exit $status; log: $log"
exit "$status"
