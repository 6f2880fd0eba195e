#!/usr/bin/env bash
# Fetch, on a machine that reaches PyPI, the wheels that the GPU machine lacks (it has torch, transformers, numpy,
# pytest, ... but not gymnasium, math-verify or stable-baselines3) into .whl/ (git-ignored), for Python 3.12 on
# x86-64 Linux. benchmarks/gpu_check.sh installs whatever lies in .whl/ before it starts; carry .whl with the tree.
# Usage: bash benchmarks/gpu_wheels.sh [PYTHON_VERSION]      (default 3.12, the GPU image's Python)
set -euo pipefail
cd "$(dirname "$0")/.."
PYV="${1:-3.12}"
# pure-Python wheels, versions this repository is tested with; their other needs (numpy, sympy, cloudpickle,
# typing-extensions, torch) are in the GPU image
WHEELS=(gymnasium==1.4.0 farama-notifications==0.0.6 math-verify==0.9.0 latex2sympy2_extended==1.11.0
        antlr4-python3-runtime==4.13.2 stable-baselines3==2.9.2)
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "${WHEELS[@]}"
ls -1 .whl
du -sh .whl
