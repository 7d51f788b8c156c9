#!/usr/bin/env bash
# Builds CFCNKernels and gemm_check.c for arm64 with the Swift toolchain's clang and runs the check
# under qemu-aarch64 (Debian: gcc-aarch64-linux-gnu for the arm64 C library and start files,
# qemu-user). Usage: bash run.sh
# Flags as SwiftPM builds the C target: -O2, no target flags (the kernels pick their ISA at
# run time).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$here/../../Sources/CFCNKernels"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
clang --target=aarch64-linux-gnu -O2 -I "$src/include" "$src"/*.c "$here/gemm_check.c" \
    -lm -o "$out/gemm_check"
qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/gemm_check"
