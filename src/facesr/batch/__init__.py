"""Batch restore of very many photos on a Ray cluster, resumable (``facesr restore-batch``).

Why a package of its own: the single-machine ``facesr restore`` must not need Ray, and the pieces
here have one job each - :mod:`.inputs` turns folders, globs and manifests into a list of photos,
:mod:`.manifest` owns the output folder's state (output names, the per-photo manifest, the
settings hash that makes a rerun skip finished photos), :mod:`.work` is the per-photo work
(plain Python, testable without Ray) and :mod:`.pipeline` is the Ray Data job around it. Only
:mod:`.pipeline` imports Ray, and only when a batch is run. See docs/scale-out.md.
"""
