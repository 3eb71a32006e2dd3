#!/usr/bin/env bash
# Installs (idempotently) and exports what building and running rolekd needs:
# a Python venv with PyPI torch==2.11.0 (libtorch for tch 0.24), Debian's
# Fashion-MNIST package, and the environment torch-sys reads. Source it.
case $- in *e*) _rolekd_e=-e ;; *) _rolekd_e=+e ;; esac
case $- in *u*) _rolekd_u=-u ;; *) _rolekd_u=+u ;; esac
if shopt -qo pipefail; then _rolekd_p=-o; else _rolekd_p=+o; fi
set -euo pipefail

ROLEKD_CACHE="${ROLEKD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rolekd}"
ROLEKD_VENV="${ROLEKD_VENV:-$ROLEKD_CACHE/venv-torch-2.11.0}"
TORCH_VERSION="2.11.0"
TORCHVISION_VERSION="0.26.0"   # the release built against torch 2.11

log() { echo "[rolekd setup] $*" >&2; }

ensure_torch() {
  if [ -x "$ROLEKD_VENV/bin/python" ] && \
     "$ROLEKD_VENV/bin/python" -c "import torch,sys; sys.exit(0 if torch.__version__.startswith('$TORCH_VERSION') else 1)" 2>/dev/null; then
    # safetensors and torchvision came later (the PyTorch round-trip tests, `export` and
    # `import --from torchvision` users need them).
    if ! "$ROLEKD_VENV/bin/python" -c "import safetensors, torchvision" 2>/dev/null; then
      log "installing safetensors and torchvision==$TORCHVISION_VERSION into $ROLEKD_VENV"
      "$ROLEKD_VENV/bin/python" -m pip install --quiet safetensors "torchvision==$TORCHVISION_VERSION"
    fi
    return
  fi
  log "installing torch==$TORCH_VERSION into $ROLEKD_VENV (one time, ~5 GB, a few minutes)"
  mkdir -p "$ROLEKD_CACHE"
  local py
  py="$(command -v python3)"
  "$py" -m venv "$ROLEKD_VENV"
  "$ROLEKD_VENV/bin/python" -m pip install --quiet --upgrade pip
  "$ROLEKD_VENV/bin/python" -m pip install --quiet "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" numpy pillow safetensors
}

ensure_dataset() {
  if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || \
     ls /usr/share/datasets/fashion-mnist/*train-images* >/dev/null 2>&1; then
    return
  fi
  log "installing Debian's dataset-fashion-mnist"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null
}

ensure_torch
ensure_dataset

TORCH_LIB="$("$ROLEKD_VENV/bin/python" -c 'import torch,os; print(os.path.join(os.path.dirname(torch.__file__),"lib"))')"
export ROLEKD_VENV TORCH_LIB
export LIBTORCH_USE_PYTORCH=1
# Unit-test binaries of the library crates have no RUNPATH of their own.
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LIBTORCH_BYPASS_VERSION_CHECK=0
export PATH="$ROLEKD_VENV/bin:$PATH"
export ROLEKD_FASHION_MNIST="${ROLEKD_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"
set "$_rolekd_e" "$_rolekd_u"
set "$_rolekd_p" pipefail
unset _rolekd_e _rolekd_u _rolekd_p
