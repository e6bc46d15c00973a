"""A real multi-node Ray cluster for tests, inside a namespace whose only network is loopback.

Why a namespace: Ray swaps 127.0.0.1 for the machine's own interface address, and tests may use
loopback only. ``unshare --net --pid --fork --mount-proc --kill-child`` gives the cluster a
network namespace with just ``lo`` and a pid namespace whose first process is the holder below:
``ray start --head`` plus ``ray start --address`` for every further node (each its own raylet).
Everything the cluster starts lives in that pid namespace, so when the holder ends (its stdin
closes, or ``unshare`` is killed and ``--kill-child`` kills it) the kernel ends every process in
it: nothing outlives the test, even when the test itself fails or is killed. Commands join the
cluster's namespaces with ``nsenter``. Needs root (CI runs as root) and util-linux.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Runs as PID 1 of the namespace: loopback up, the nodes started, then wait for stdin to close.
_HOLDER = r"""
import fcntl, os, socket, struct, subprocess, sys, threading
ray, temp, port, nodes, cpus = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # `ip link set lo up`, without iproute2
    flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH22x", b"lo", 0))[:18])[1]
    fcntl.ioctl(s, 0x8914, struct.pack("16sH22x", b"lo", flags | 0x1))  # SIOCSIFFLAGS |= IFF_UP
# Small object stores and no log monitors: less to start on 2 cores, and the tests need neither.
common = ["--num-cpus", cpus, "--disable-usage-stats", "--include-log-monitor=false",
          "--object-store-memory", str(300 << 20)]
head = subprocess.run([ray, "start", "--head", "--port", port, "--temp-dir", temp, "--include-dashboard=false",
                       *common], stdout=sys.stderr).returncode
codes = [head]
for _ in range(nodes - 1):
    if head:
        break
    codes.append(subprocess.run([ray, "start", "--address", f"127.0.0.1:{port}", *common],
                                stdout=sys.stderr).returncode)
if any(codes):
    sys.exit(f"ray start exited {codes} (head, other nodes)")
def reap():  # as PID 1, collect the daemonised Ray processes that exit (only now: subprocess.run needs its own)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            threading.Event().wait(0.5)
threading.Thread(target=reap, daemon=True).start()
print("READY", flush=True)
sys.stdin.read()
"""


def available() -> str | None:
    """Why the cluster cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "needs root for unshare/nsenter (CI runs as root)"
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    if not (Path(sys.executable).parent / "ray").is_file():
        return "ray is not installed (pip install 'facesr[ray]')"
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        return f"unshare --net fails here: {probe.stderr.decode().strip()}"
    return None


class Cluster:
    """``nodes`` Ray nodes of ``cpus`` logical CPUs each, at ``address`` inside the namespace."""

    def __init__(self, nodes: int = 2, cpus: int = 2, port: int = 6390) -> None:
        self.nodes, self.cpus, self.port = nodes, cpus, port
        self.address = f"127.0.0.1:{port}"
        # Short: Ray's unix socket paths under it must stay below 107 characters.
        self.temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
        self.log = Path(self.temp) / "holder.log"
        self.proc: subprocess.Popen[bytes] | None = None
        # Ray >= 2.5x turns token authentication on for a head node whenever ~/.ray/auth_token
        # exists (any local ray.init() writes one), but a node joining with `ray start --address`
        # does not read it and fails with "InvalidAuthToken": the cluster started or not depending
        # on what ran on the machine before. The namespace has only loopback, so authentication
        # is turned off explicitly for every process of the cluster and every command run in it.
        # Ray also runs its workers at nice 15, so on a machine busy with other work (CI runners, the
        # training runs of a development machine) a worker took over a minute to run its first task;
        # at the test's own priority it takes seconds.
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_worker_niceness": "0",
        }
        self.ns_pid = 0

    def start(self, timeout: float | None = None, tries: int = 2) -> None:
        """Start the nodes; ``FACESR_RAY_START_S`` (default 180) bounds how long each try may take.

        A second try in a fresh namespace follows a failed one: Ray gives a raylet a fixed 30 s to
        register (``ray._private.node``), which a 2-core machine under heavy load can miss.
        """
        for left in range(tries - 1, -1, -1):
            try:
                return self._start_once(timeout)
            except RuntimeError:
                if not left:
                    raise
                self.temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
                self.log = Path(self.temp) / "holder.log"

    def _start_once(self, timeout: float | None) -> None:
        timeout = timeout or float(os.environ.get("FACESR_RAY_START_S", "180"))
        ray = str(Path(sys.executable).parent / "ray")
        cmd = ["unshare", "--net", "--pid", "--fork", "--mount-proc", "--kill-child"]
        cmd += [
            sys.executable,
            "-c",
            _HOLDER,
            ray,
            self.temp,
            str(self.port),
            str(self.nodes),
            str(self.cpus),
        ]
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
                env=self.env,
            )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""
        if line.strip() != b"READY":
            code = self.proc.poll()
            # read before stop() removes the temp folder: every error line, then the end of the log
            full = self.log_tail(1 << 20)
            errors = [ln for ln in full.splitlines() if ln.startswith(("Exception", "RuntimeError", "ray."))]
            tail = " | ".join(errors[-6:]) + " ... " + full[-1500:]
            self.stop()
            raise RuntimeError(
                f"Ray cluster did not start (holder exit code {code}, timeout {timeout:.0f} s): {tail!r}"
            )
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        self.ns_pid = int(children[0])  # the holder, PID 1 inside

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _enter(self, args: list[str]) -> list[str]:
        return ["nsenter", "-t", str(self.ns_pid), "--net", "--pid", "--mount", "--", *args]

    def popen(self, args: list[str], **kw: object) -> subprocess.Popen[str]:
        """Start a command inside the cluster's namespaces (it sees only loopback)."""
        return subprocess.Popen(self._enter(args), text=True, env=self.env, **kw)  # type: ignore[call-overload]

    def run(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._enter(args), text=True, capture_output=True, timeout=timeout, env=self.env
        )

    def processes(self) -> list[tuple[int, str]]:
        """``(pid, command line)`` of every process in the cluster's pid namespace (host pids)."""
        try:
            ns = os.readlink(f"/proc/{self.ns_pid}/ns/pid")
        except OSError:
            raise RuntimeError(f"the Ray cluster is gone: {self.log_tail()}") from None
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(entry / "ns" / "pid") != ns:
                    continue
                args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:  # exited meanwhile
                continue
            out.append((int(entry.name), args.strip()))
        return out

    def kill(self, pid: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default SIGKILL) to one process of the cluster, by the pid :meth:`processes` gave."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def stop(self) -> None:
        """End the namespace (and with it every process of the cluster), then remove its files."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()  # the holder returns from stdin.read() and exits
                self.proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, OSError, BrokenPipeError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # unshare --kill-child takes the holder down
                self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while self.ns_pid and Path(f"/proc/{self.ns_pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(self.temp, ignore_errors=True)

    def alive(self) -> bool:
        return bool(self.ns_pid) and Path(f"/proc/{self.ns_pid}").exists()
