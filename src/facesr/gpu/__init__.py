"""Tools for a lent GPU machine, run as ``facesr gpu pack|unpack|session|speed|check``.

A GPU is the exception here and is lent for minutes, with no network and a size limit on what travels, so
these tools move the data and the work there and back: ``pack`` (here) writes ``.gpu/`` (JPEGs, alignment
matrices, mask templates, wheels); on the GPU machine ``unpack`` re-creates the prepared set without dlib,
``session`` runs a whole training session in three idempotent commands, ``speed`` measures every speed lever
and ``check`` scores a run on held-out faces. The shell wrappers ``scripts/gpu_*.sh`` set the data root and
``PYTHONPATH`` (the package is not installed there) and call these. docs/training.md and docs/speed.md.
"""
