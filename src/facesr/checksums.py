"""sha256 of files, and the checks of the bundled non-zoo weights (MTCNN, the identity network) and of
the shared general-SR weights (``../shared/pretrained``: RLFN_Prune, SPAN).

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
#: sha256 of the shared general-SR weights by file name, as ``../shared/pretrained/README.md`` records them.
PRETRAINED_SHA256 = {
    "rlfn_prune_x4_div2k.safetensors": "72ffc166d457c740e2c8af25e8f0e53eedf7156ef4136bdcaa13e61c8df6a577",
    "span_ch28_x4_div2k.safetensors": "f74404d0d32bbb8ec22cea78c4dbad43556ea6cb36e48b415d99138f9d492131",
}
#: Where a good copy of those files comes from (source repository, commit, conversion).
PRETRAINED_README = "../shared/pretrained/README.md"

#: (resolved path, size, mtime_ns, inode) -> sha256, for :func:`sha256_file_cached`.
_HASH_CACHE: dict[tuple[str, int, int, int], str] = {}


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_file_cached(path: str | os.PathLike[str]) -> str:
    """:func:`sha256_file`, computed once per process per (path, size, mtime, inode).

    For files that are read many times in one process (tests, training restarts): a file rewritten
    in place changes its mtime (or size) and is hashed again. A replacement that keeps size, mtime
    and inode is not noticed; that needs intent, not corruption.
    """
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns, st.st_ino)
    digest = _HASH_CACHE.get(key)
    if digest is None:
        digest = sha256_file(p)
        _HASH_CACHE[key] = digest
    return digest


def verify_pretrained(path: str | os.PathLike[str]) -> None:
    """Check a shared general-SR weights file against :data:`PRETRAINED_SHA256`, by its file name.

    These files live outside the package (``FACESR_PRETRAINED`` or ``<data root>/../pretrained``), so
    the check goes by name wherever the file is. A file under any other name (a user's own general-SR
    weights, a renamed or fine-tuned copy) has no known hash and is not checked; nor is a missing
    file (that is its loader's error). The hash is cached per (path, size, mtime): see
    :func:`sha256_file_cached`.
    """
    path = Path(path)
    want = PRETRAINED_SHA256.get(path.name)
    if want is None or not path.is_file():
        return
    if sha256_file_cached(path) != want:
        raise ModelError(
            f"{path.name} in {str(path.parent)!r} fails its sha256 check (corrupt or replaced file); "
            f"get a good copy as {PRETRAINED_README} describes (NTIRE2024_ESR, converted to safetensors)"
        )


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
