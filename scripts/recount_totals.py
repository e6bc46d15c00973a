"""Take a run counted twice out of a weights file's training totals (``facesr.totals``).

Why: before session 9 a resumed run re-read the totals of its ``model.init_from`` file at export; when
that file was the shipped model and had meanwhile been replaced by the run's own earlier export, the run
was counted twice (fixed in ``facesr.train.loop``; ``warmstart.checkpoint_prior_totals``). The part
counted twice is the difference between the replaced file and the file the run really started from:

    python scripts/recount_totals.py FILE --replaced REPLACED.safetensors --started-from ORIGINAL.safetensors

rewrites FILE's ``facesr.totals`` (tensors and other metadata unchanged, written atomically) and prints
the before and after. Both reference files can come from git (``git show REV:path > /tmp/x``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from facesr.io import atomic_path


def totals(path: Path) -> dict[str, float]:
    """``facesr.totals`` of a weights file (``{}`` when it has none)."""
    with safe_open(str(path), framework="pt") as fh:
        return json.loads((fh.metadata() or {}).get("facesr.totals", "{}") or "{}")


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path, help="weights file whose totals count a run twice (rewritten)")
    ap.add_argument("--replaced", type=Path, required=True, help="the init_from file as it was re-read")
    ap.add_argument(
        "--started-from", type=Path, required=True, help="the init_from file the run started from"
    )
    args = ap.parse_args(argv)
    now, twice = (
        totals(args.file),
        {k: totals(args.replaced)[k] - v for k, v in totals(args.started_from).items()},
    )
    fixed = {k: round(v - twice.get(k, 0.0), 4) for k, v in now.items()}
    if any(v < 0 for v in fixed.values()) or not now:
        raise SystemExit(f"recount_totals: {args.file}: the result would be negative or empty ({fixed})")
    with safe_open(str(args.file), framework="pt") as fh:
        meta = dict(fh.metadata() or {})
    meta["facesr.totals"] = json.dumps(fixed, sort_keys=True)
    tensors = load_file(str(args.file))
    with atomic_path(args.file) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    print(f"{args.file}: {now} -> {fixed}")
    return fixed


if __name__ == "__main__":
    main()
