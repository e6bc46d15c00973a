"""``facesr runs RUN_DIR...``: a Markdown table of finished runs, read from their own files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def runs_table(run_dirs: Sequence[str | Path]) -> str:
    """Table of finished runs (recipe, steps, wall time, last logged losses) from their own files."""
    import yaml

    from facesr.train.loop import load_checkpoint
    from facesr.train.runlog import iter_log

    lines = [
        "| run | recipe | steps | wall s | last logged losses |",
        "| --- | --- | --- | --- | --- |",
    ]
    for d in run_dirs:
        d = Path(d)
        state = load_checkpoint(d / "ckpt" / "last.pt")
        recipe = (yaml.safe_load(state["config_yaml"]) or {}).get("recipe", {}).get("name", "?")
        last: dict[str, Any] = {}
        for r in iter_log(d / "log.jsonl"):
            if "event" not in r:
                last = r
        losses = ", ".join(
            f"{k} {v:.4g}" for k, v in last.items() if k.startswith(("G/", "D/")) and isinstance(v, float)
        )
        lines.append(f"| `{d}` | {recipe} | {state['step']} | {state['elapsed_s']:.0f} | {losses} |")
    return "\n".join(lines) + "\n"
