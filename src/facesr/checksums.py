"""sha256 of files, and the check of the bundled non-zoo weights (MTCNN, the identity network).

A leaf (standard library and the errors only), so that the modules that load those weights (a network,
the detector) can check them without importing the model zoo, which imports every network.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from facesr.errors import ModelError

#: The package's weights folder (the zoo's ``WEIGHTS_DIR``).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: sha256 of the bundled non-zoo weights, checked every time they are loaded.
BUNDLED_SHA256 = {
    "mtcnn.safetensors": "9d15fcb0ea2a94e87b4875ca1790e3d43f20057c9aa1b4cebebe69d2c8ffb1a6",
    "face_id.safetensors": "e1bcc11eaaf3cd6f43de930aa605a9c724a7d5283bdfd01f10b45e93454f39f9",
}


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_bundled(path: str | os.PathLike[str]) -> None:
    """Check a bundled weights file (MTCNN, identity net) against :data:`BUNDLED_SHA256`.

    Files outside the package's weights folder or without a recorded hash are not checked here
    (a converter script writing a fresh file, a test's own file).
    """
    path = Path(path)
    want = BUNDLED_SHA256.get(path.name)
    if want is None or path.resolve().parent != WEIGHTS_DIR.resolve() or not path.is_file():
        return
    if sha256_file(path) != want:
        raise ModelError(
            f"{path.name} fails its sha256 check (corrupt or replaced file); reinstall facesr to restore it"
        )
