"""The restore settings of a batch and their hash.

Why a hash: a rerun may skip a photo only when the finished output was made from the same input
bytes *and* the same settings; any option that can change an output byte (model and its weights,
device, precision, engine, batch size, aligned mode, upscale factor, background upsampler and its
weights, pixel limit, smallest face) and the facesr
version go into it. ``tests/test_batch.py`` checks that every option of ``facesr restore`` that
shapes the output is a field here, so a new restore option cannot be forgotten silently.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RestoreSettings:
    """Everything ``facesr.restore`` is called with, resolved (no ``auto`` left but the model)."""

    model: str  # "auto", "bicubic", a zoo name or a .safetensors path
    device: str  # resolved on the driver from the cluster's resources: "cpu" or "cuda"
    precision: str
    engine: str  # resolved: "torch" or "ort"
    batch_size: int
    aligned: bool
    upscale: int  # 0: restore's default (2; the 128 px frame with --aligned)
    bg_upsampler: str
    max_pixels: int
    min_face: float
    model_fingerprint: str = ""  # the weights behind ``model`` (see model_fingerprint)
    bg_fingerprint: str = ""  # the weights behind ``bg_upsampler``
    # Faces are found by the CPU stage (facesr.batch.work.prepare), whatever ``device`` restores:
    # on a GPU cluster that can differ from `facesr restore --device cuda`, so it is in the hash.
    detect_device: str = "cpu"
    # Torch threads of every worker and CPU task: float sums (and so output bytes) depend on the
    # thread count, so a batch pins it; `OMP_NUM_THREADS=N facesr restore` gives the same bytes.
    threads: int = 1

    def restore_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`facesr.restoration.api.restore` (same as ``facesr restore``)."""
        from facesr.restoration.detect import DetectOptions

        return {
            "model": None if self.model == "auto" else self.model,
            "device": self.device,
            "precision": self.precision,
            "engine": self.engine,
            "batch_size": self.batch_size,
            "aligned": self.aligned,
            "upscale": self.upscale or None,
            "bg_upsampler": self.bg_upsampler,
            "detect": DetectOptions(min_size=self.min_face),
            "max_pixels": self.max_pixels,
            "keep_faces": False,
        }

    def to_json(self) -> dict[str, Any]:
        from facesr import __version__

        return {**asdict(self), "facesr": __version__}

    @property
    def sha256(self) -> str:
        blob = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


def _weights_sha(name: str) -> str:
    from facesr.zoo import _read_zoo, sha256_file

    zoo = _read_zoo()
    if name in zoo:
        return zoo[name].sha256 or sha256_file(zoo[name].path)
    return sha256_file(name)


def model_fingerprint(model: str) -> str:
    """The weights a face-model name stands for, so replacing a weights file redoes its photos.

    ``auto`` covers every default model (or its bicubic fallback when not installed); a zoo name
    uses its pinned sha256; a file path is hashed. Unknown names raise ModelError (exit 2).
    """
    from facesr.restoration.api import DEFAULT_MODELS, model_installed
    from facesr.zoo import _read_zoo, load_model

    zoo = _read_zoo()
    if model == "auto":
        names = sorted(set(DEFAULT_MODELS.values()))
        return ";".join(
            f"{n}={zoo[n].sha256 if n in zoo and model_installed(n) else 'bicubic-fallback'}" for n in names
        )
    if model in ("bicubic", "bicubic-x4", "bicubic-x8"):
        return model
    load_model(model, device="cpu")  # unknown name, missing or corrupt file -> ModelError now
    return _weights_sha(model)


def background_fingerprint(name: str) -> str:
    """The weights behind ``--bg-upsampler`` (``bicubic``: none); an unusable name raises now."""
    from facesr.restoration.api import background_upsampler

    background_upsampler(name, "cpu")  # unknown or unusable: the same one-line error as restore
    return name if name == "bicubic" else _weights_sha(name)
