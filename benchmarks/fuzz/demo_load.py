"""Concurrency check for `facesr demo`: N restore requests from C concurrent clients on localhost.

Why: the demo is a long-running server shared by several people; it must answer every request
(queueing the extra ones, never dropping or crashing) and must not leak memory per request.

What it does: starts ``facesr demo`` on a free localhost port in a subprocess, sends one warm-up
request (model and detector load), then ``--requests`` restore requests through the demo's API
(``gradio_client``, the same ``/restore`` endpoint the page uses) from ``--clients`` threads, each
with its own client, rotating over the bundled sample photos. With ``--fetch`` every file an
answer names (before, after, each face crop, the download) is fetched back over HTTP and decoded
strictly (``facesr.io.read_image``): a file that is cut short, or whose size differs from what the
server says, is a **truncated response**. The loop is bounded: it stops after
``--requests`` answers or errors, or at ``--deadline`` seconds. A sampler thread reads the server's
resident memory (VmRSS of its process tree) every second. Writes a JSON report and prints a summary.

    python benchmarks/fuzz/demo_load.py --requests 100 --clients 8 --out workspace/fuzz/demo_load.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "src" / "facesr" / "samples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, in MiB (Linux /proc)."""
    total_kb = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            pids.extend(int(c) for c in children)
        except (OSError, ValueError):
            continue
    return total_kb / 1024.0


def _file_urls(value: Any) -> list[tuple[str, int | None]]:
    """Every (url, size) that an answer of the /restore endpoint names (nested dicts and lists)."""
    found: list[tuple[str, int | None]] = []
    if isinstance(value, dict):
        if isinstance(value.get("url"), str):
            found.append((value["url"], value.get("size")))
        for key in ("image", "value"):
            if key in value:
                found += _file_urls(value[key])
    elif isinstance(value, (list, tuple)):
        for v in value:
            found += _file_urls(v)
    elif isinstance(value, str) and value.startswith("http"):
        found.append((value, None))
    return found


def fetch_all(base: str, answer: Any) -> tuple[list[str], list[str]]:
    """Fetch every file of an answer; returns (urls fetched, those that were truncated or undecodable)."""
    from facesr.errors import FacesrError
    from facesr.io import read_image

    fetched, bad = [], []
    for url, size in _file_urls(answer):
        if not url.startswith("http"):
            url = base.rstrip("/") + "/" + url.lstrip("/")
        fetched.append(url)
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                data = resp.read()
                length = resp.headers.get("Content-Length")
            if (length is not None and int(length) != len(data)) or (size and int(size) != len(data)):
                bad.append(f"{url}: {len(data)} bytes, expected {length or size}")
            elif not url.lower().endswith(".json"):
                read_image(data)
        except (OSError, FacesrError) as exc:
            bad.append(f"{url}: {exc}"[:300])
    return fetched, bad


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo server exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"demo server not ready after {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=1, help="server-side `facesr demo --concurrency`")
    ap.add_argument(
        "--deadline", type=float, default=1800.0, help="stop after this many seconds whatever happens"
    )
    ap.add_argument("--out", type=Path, default=REPO / "workspace" / "fuzz" / "demo_load.json")
    ap.add_argument("--fetch", action="store_true", help="fetch and strictly decode every returned file")
    args = ap.parse_args(argv)

    photos = sorted(SAMPLES.glob("*.jpg"))
    if not photos:
        raise SystemExit(f"no sample photos in {SAMPLES}")
    os.environ.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    from gradio_client import Client, handle_file

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log_path = args.out.with_suffix(".server.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "facesr.cli",
                "demo",
                "--port",
                str(port),
                "--concurrency",
                str(args.concurrency),
                "--queue-size",
                str(max(64, 2 * args.clients)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    t_start = time.monotonic()

    def sampler() -> None:
        while not stop.is_set():
            samples.append((round(time.monotonic() - t_start, 2), round(tree_rss_mb(server.pid), 1)))
            stop.wait(1.0)

    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    counter = iter(range(args.requests))
    try:
        wait_ready(url, server, 180)
        rss_idle = tree_rss_mb(server.pid)
        threading.Thread(target=sampler, daemon=True).start()
        warm = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        t0 = time.monotonic()
        warm.predict(handle_file(str(photos[0])), "auto (by face size)", api_name="/restore")
        warmup_s = time.monotonic() - t0
        rss_warm = tree_rss_mb(server.pid)
        t_load = time.monotonic()

        def client_loop(cid: int) -> None:
            client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
            while time.monotonic() - t_start < args.deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                photo = photos[i % len(photos)]
                t = time.monotonic()
                try:
                    out = client.predict(handle_file(str(photo)), "auto (by face size)", api_name="/restore")
                    status = out[4] if isinstance(out, (list, tuple)) and len(out) > 4 else ""
                    ok = "restored" in str(status)
                    rec = {
                        "i": i,
                        "client": cid,
                        "ok": ok,
                        "seconds": round(time.monotonic() - t, 3),
                        "status": str(status)[:200],
                    }
                    if args.fetch:
                        bad = fetch_all(url, out)
                        rec["files_fetched"], rec["truncated"] = bad
                        rec["ok"] = ok and not bad[1]
                except Exception as exc:
                    rec = {
                        "i": i,
                        "client": cid,
                        "ok": False,
                        "seconds": round(time.monotonic() - t, 3),
                        "error": f"{type(exc).__name__}: {exc}"[:300],
                    }
                with lock:
                    results.append(rec)
                    if len(results) % 10 == 0:
                        print(
                            f"  {len(results)}/{args.requests} answered, server RSS "
                            f"{tree_rss_mb(server.pid):.0f} MiB",
                            file=sys.stderr,
                            flush=True,
                        )

        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(client_loop, range(args.clients)))
        load_s = time.monotonic() - t_load
        rss_end = tree_rss_mb(server.pid)
        alive = server.poll() is None
    finally:
        stop.set()
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
    log_text = log_path.read_text(errors="replace")
    lat = sorted(r["seconds"] for r in results)
    by_10 = [r for r in sorted(results, key=lambda r: r["i"])]
    # RSS after the first tenth of the load vs at the end: "flat" means the second does not keep growing.
    tenth = t_load - t_start + (load_s / 10)
    rss_after_tenth = next((mb for ts, mb in samples if ts >= tenth), rss_end)
    report = {
        "requests": args.requests,
        "clients": args.clients,
        "server_concurrency": args.concurrency,
        "answered": len(results),
        "ok": sum(r["ok"] for r in results),
        "files_fetched": sum(len(r.get("files_fetched", [])) for r in results) if args.fetch else None,
        "truncated_responses": sum(len(r.get("truncated", [])) for r in results) if args.fetch else None,
        "errors": [r for r in by_10 if not r["ok"]][:20],
        "server_alive_after": alive,
        "tracebacks_in_server_log": log_text.count("Traceback"),
        "warmup_s": round(warmup_s, 2),
        "load_s": round(load_s, 1),
        "throughput_per_s": round(len(results) / load_s, 3) if load_s else None,
        "latency_s": {
            "p50": statistics.median(lat) if lat else None,
            "p95": lat[int(0.95 * (len(lat) - 1))] if lat else None,
            "max": lat[-1] if lat else None,
        },
        "rss_mib": {
            "idle": round(rss_idle, 1),
            "after_warmup": round(rss_warm, 1),
            "after_first_tenth": rss_after_tenth,
            "end": round(rss_end, 1),
            "peak": max((mb for _, mb in samples), default=None),
            "growth_after_first_tenth": round(rss_end - rss_after_tenth, 1),
        },
        "rss_samples": samples,
        "command": " ".join(["benchmarks/fuzz/demo_load.py", *(argv or sys.argv[1:])]),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("rss_samples", "errors")}, indent=2))
    ok = report["ok"] == args.requests and alive and report["tracebacks_in_server_log"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
