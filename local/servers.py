"""Child processes of a local run (moto server, the emulator, function workers), always stopped.

Every child is started through a :class:`ChildProcesses`; :func:`child_processes` stops them all (SIGTERM,
then SIGKILL) when its ``with`` block ends, whatever ends it: success, an exception, Ctrl-C or SIGTERM (see
:func:`stop_on_sigterm`).
On Linux each child also asks the kernel to send it SIGTERM if its parent dies without cleaning up, and the
children of this package exit when their stdin closes, so none outlives the run.

``python -m local.servers moto`` runs a moto server on a free loopback port and prints its URL.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

REPO_ROOT = Path(__file__).resolve().parent.parent
_URL = re.compile(r"http://127\.0\.0\.1:\d+")
_PR_SET_PDEATHSIG = 1
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
"""What moto and the emulator accept; a local run never uses anyone's real credentials."""


class ServerStartError(RuntimeError):
    """A server did not print its URL in time; the message holds the end of its log."""


# NOTE: loaded here, not in the child: between fork and exec only async-signal-safe work is safe in a
# process with threads, and dlopen is not.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ChildProcesses:
    """The processes one local run started, stopped in reverse order on :meth:`stop_all`."""

    log_dir: Path
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    started_pids: list[int] = field(default_factory=list)
    """Every process ever started, stopped or not (for checking that none is left)."""
    _log_names: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    """Pollers start function workers from their own threads."""

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path = REPO_ROOT,
        pass_fds: Sequence[int] = (),
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` with exactly ``env``; stdout and stderr go to ``<log_dir>/<name>.log``."""
        with self._lock:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            if not self._log_names:
                (self.log_dir / "pids").unlink(missing_ok=True)
            # A log starts empty in each run; a restarted worker appends to its own log of this run.
            with (self.log_dir / f"{name}.log").open("ab" if name in self._log_names else "wb") as log:
                self._log_names.add(name)
                process = subprocess.Popen(
                    list(argv),
                    env=dict(env),
                    cwd=cwd,
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=tuple(pass_fds),
                    # NOTE: a session of its own keeps Ctrl-C in the terminal from reaching the child directly:
                    # the parent stops children in order instead of each one dying mid-request.
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            self.children.append((name, process))
            self.started_pids.append(process.pid)
            # Written as they start, so that a run that is interrupted can still be checked for leftovers.
            with (self.log_dir / "pids").open("a", encoding="utf-8") as pids:
                pids.write(f"{process.pid} {name}\n")
        return process

    def start_server(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str], timeout_s: float = 30
    ) -> str:
        """Start a server that prints its loopback URL; return the URL once it is printed."""
        process = self.spawn(name, argv, env=env)
        log_path = self.log_dir / f"{name}.log"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = _URL.search(log_path.read_text(encoding="utf-8", errors="replace"))
            if match:
                return match.group(0)
            if process.poll() is not None:
                break
            time.sleep(0.05)
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise ServerStartError(f"{name} did not print its URL (exit code {process.poll()}); log:\n{tail}")

    def stop(self, process: subprocess.Popen[bytes], timeout_s: float = 5) -> None:
        """Stop one child: close its stdin, SIGTERM, and SIGKILL if it is still there after ``timeout_s``."""
        if process.stdin is not None and not process.stdin.closed:
            with suppress(OSError):
                process.stdin.close()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with self._lock:
            self.children = [(n, p) for n, p in self.children if p is not process]

    def stop_all(self) -> None:
        with self._lock:
            children = list(self.children)
        for _, process in reversed(children):
            self.stop(process)


@contextmanager
def child_processes(log_dir: Path) -> Iterator[ChildProcesses]:
    """Yield a :class:`ChildProcesses`; every process it started is stopped when the block ends."""
    children = ChildProcesses(log_dir)
    try:
        yield children
    finally:
        children.stop_all()


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into ``SystemExit`` inside the block, so ``finally`` clauses stop the children."""

    def exit_now(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def server_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment for a server child: PATH, locale, fake credentials, and ``extra``."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(FAKE_CREDENTIALS)
    env.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.update(extra or {})
    return env


def start_moto(children: ChildProcesses) -> str:
    """Start moto server (Kinesis, SQS, S3) on a free loopback port; return its URL."""
    return children.start_server("moto", [sys.executable, "-m", "local.servers", "moto"], env=server_environment())


def start_emulator(children: ChildProcesses, config_path: Path | None = None, db_path: Path | None = None) -> str:
    """Start the Personalize Events emulator on a free loopback port; return its URL.

    With ``db_path`` its store is that SQLite file (kept across restarts); otherwise it is in memory.
    """
    argv = [sys.executable, "-m", "emulator", "--host", "127.0.0.1", "--port", "0"]
    if config_path is not None:
        argv += ["--config", str(config_path)]
    if db_path is not None:
        argv += ["--db", str(db_path)]
    return children.start_server("emulator", argv, env=server_environment())


def _serve_moto() -> None:  # pragma: no cover - exercised through start_moto in a child process
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server._server.server_port  # type: ignore[union-attr]
    print(f"moto server listening on http://127.0.0.1:{port}", flush=True)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        # NOTE: the parent holds our stdin open; EOF means it is gone (or done with us).
        sys.stdin.buffer.read()
    finally:
        server.stop()


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] != ["moto"]:
        sys.exit("usage: python -m local.servers moto")
    _serve_moto()
