"""Render the figures of docs/reliability.md from the JSON reports of the three hardening scripts.

Why: the figures in the docs must come from a run, not from typing; this prints the Markdown
tables (fuzzing, kill/resume, demo load) from ``fuzz_inputs.py``, ``kill_resume.py`` and
``demo_load.py`` reports, so the page can be regenerated after any rerun.

    python benchmarks/fuzz/reliability_tables.py workspace/fuzz
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fuzz_inputs import table_lines  # same folder; this file is run as a script


def fuzz_table(rep: dict) -> str:
    lines = table_lines(rep["summary"])
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(rep["kinds"].items(), key=lambda kv: -kv[1]))
    api = rep["targets"].get("api", {})
    slow = ", ".join(f"{n} {s:.1f} s" for s, n in api.get("slowest", [])[:3])
    reasons = "; ".join(f"{k} ({v})" for k, v in rep["targets"].get("read", {}).get("error_reasons", [])[:8])
    cli = rep["targets"].get("cli", {})
    notes = [
        f"Corpus: {rep['count']:,} files (seed {rep['seed']}, corpus sha256 `{rep['corpus_sha256'][:16]}...`): "
        f"{kinds}. Per-input timeout {rep['timeout_s']:.0f} s, memory cap per process: "
        f"{str(rep['mem_limit_gb']) + ' GB' if 'mem_limit_gb' in rep else 'none'}; whole run {rep['seconds_total'] / 60:.1f} min."
    ]
    if cli:
        notes.append(
            f"`facesr restore` got {cli['invocations']} invocations of up to {rep['cli_batch']} files "
            f"(exit codes {cli['exit_codes']})."
        )
    if slow:
        notes.append(f"Slowest restore API inputs: {slow}.")
    if reasons:
        notes.append(f"Most common one-line reasons (read_image): {reasons}.")
    prep = rep["targets"].get("prepare", {}).get("run", {})
    if prep.get("traceback") or prep.get("hang"):
        notes.append(
            f"`facesr prepare` exit status {prep['rc']}; end of its stderr: `{prep['stderr_tail'].strip().splitlines()[-1][:200]}`"
        )
    return "\n".join([*lines, "", *notes])


def kill_table(rep: dict) -> str:
    rows = [
        ("kills (SIGKILL), each followed by `facesr train --resume`", rep["kills"]),
        ("... of which landed while a checkpoint temp file existed", rep["kills_during_checkpoint_write"]),
        ("... of which came after new progress was checkpointed", rep["kills_with_progress"]),
        (
            "tensors compared with the uninterrupted run (nets, EMA, optimisers, weights.safetensors)",
            rep["tensors_compared"],
        ),
        ("tensors that differ", rep["tensors_differing"]),
        ("checkpoint files that failed to load after a kill", rep["unloadable_checkpoints_seen"]),
        ("log steps identical to the uninterrupted run", rep["log_steps_match"]),
        ("leftover atomic-write temp files at the end", rep["temp_files_left_at_end"]),
        (
            "uninterrupted run / interrupted runs, wall time",
            f"{rep['reference_s']} s / {rep['interrupted_total_s']} s",
        ),
    ]
    return "\n".join(["| check | result |", "|---|---|", *[f"| {a} | {b} |" for a, b in rows]])


def load_table(rep: dict) -> str:
    r = rep["rss_mib"]
    lat = rep["latency_s"]
    rows = [
        (
            "requests / concurrent clients / server concurrency",
            f"{rep['requests']} / {rep['clients']} / {rep['server_concurrency']}",
        ),
        ("answered with a result", f"{rep['ok']} of {rep['requests']} ({rep['answered']} answered)"),
        (
            "server alive afterwards; tracebacks in its log",
            f"{rep['server_alive_after']}; {rep['tracebacks_in_server_log']}",
        ),
        ("load phase wall time; throughput", f"{rep['load_s']} s; {rep['throughput_per_s']} requests/s"),
        ("latency p50 / p95 / max (s, includes queueing)", f"{lat['p50']} / {lat['p95']} / {lat['max']}"),
        (
            "server RSS idle / after warm-up / after 1st tenth / end / peak (MiB)",
            f"{r['idle']} / {r['after_warmup']} / {r['after_first_tenth']} / {r['end']} / {r['peak']}",
        ),
        ("RSS growth from the first tenth to the end (MiB)", r["growth_after_first_tenth"]),
    ]
    return "\n".join(["| check | result |", "|---|---|", *[f"| {a} | {b} |" for a, b in rows]])


def main(argv: list[str] | None = None) -> int:
    root = Path((argv or sys.argv[1:] or ["workspace/fuzz"])[0])
    for title, name, fn in (
        ("Fuzzing", "report.json", fuzz_table),
        ("Kill / resume", "kill_resume.json", kill_table),
        ("Demo under load", "demo_load.json", load_table),
    ):
        path = root / name
        print(f"### {title} (`{path}`)\n")
        print(fn(json.loads(path.read_text())) if path.is_file() else "(no report)")
        print()
    for extra in sorted(root.glob("report_*.json")):  # single-target reruns (e.g. --targets prepare)
        print(f"### Fuzzing, separate run (`{extra}`)\n")
        print(fuzz_table(json.loads(extra.read_text())))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
