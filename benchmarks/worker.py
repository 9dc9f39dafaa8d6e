"""The function side of the benchmarks: a process of its own, so CPU time, peak RSS and import time belong to the
function alone (moto and the emulator run in the parent process, :mod:`benchmarks.harness`).

``python -m benchmarks.worker RESULT_FD``: reads one job per line (JSON) on stdin, runs it, and writes one result
line (JSON) to the file descriptor RESULT_FD. Stdout is the function's own, as in Lambda: JSON logs and EMF metric
documents, which the parent keeps and reads. A job's ``env`` is applied to the environment before it runs (the
function reads its settings at every invocation), and removed after.
"""

from __future__ import annotations

import cProfile
import gc
import importlib
import json
import os
import resource
import sys
import time
import traceback
import tracemalloc
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = REPO_ROOT / "functions"
LAMBDA_TIMEOUT_MS = 900_000
"""The remaining time the fake context starts with: Lambda's longest timeout, so no deadline interferes."""


def main(argv: list[str]) -> int:
    (result_fd,) = argv
    for path in (str(REPO_ROOT), str(FUNCTIONS_DIR)):
        if path not in sys.path:
            sys.path.insert(0, path)
    with os.fdopen(int(result_fd), "w", encoding="utf-8") as results:
        for line in sys.stdin:
            if not line.strip():
                continue
            job = json.loads(line)
            applied = _apply_env(job.get("env") or {})
            try:
                result = run_job(job)
            except Exception:
                result = {"error": traceback.format_exc()}
            finally:
                for name in applied:
                    os.environ.pop(name, None)
            sys.stdout.flush()
            results.write(json.dumps(result) + "\n")
            results.flush()
    return 0


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    if job["kind"] == "prepare":
        from benchmarks.prepare_cpu import measure_prepare

        return measure_prepare(job)
    if job["kind"] in ("per_record", "boto3_calls"):
        from benchmarks import baselines

        return (
            baselines.measure_per_record(job)
            if job["kind"] == "per_record"
            else baselines.measure_boto3_calls(job)
        )
    return measure_invocation(job)


def _apply_env(env: dict[str, str]) -> list[str]:
    for name, value in env.items():
        os.environ[name] = value
    return list(env)


def measure_invocation(job: dict[str, Any]) -> dict[str, Any]:
    """Import the entity's handler, optionally warm it up, then time one invocation with ``job["event"]``.

    ``importS`` is the handler's import time when this job imported it first (a cold start's share), else None.
    """
    module = f"{job['entity']}.handler"
    first_import = module not in sys.modules
    started = time.perf_counter()
    handler = importlib.import_module(module).lambda_handler
    import_s = time.perf_counter() - started if first_import else None

    from benchmarks.events import build_event
    from emulator.testing import EmulatorHandle

    emulator = EmulatorHandle(job["emulatorUrl"])
    warmup: dict[str, Any] = {}
    if job.get("warmup"):
        # NOTE: the first invocation of a container creates the boto3 clients; the measured one is a warm one,
        # as most invocations of a busy function are. Its calls are then forgotten by the emulator.
        warmup_started = time.perf_counter()
        handler(build_event(job["warmup"]), _context())
        warmup = {"firstInvocationS": time.perf_counter() - warmup_started}
        emulator.reset(records=True, faults=False, quotas=False)

    event = build_event(job["event"])
    context = _context()
    gc.collect()
    peak_before_kib = peak_rss_kib()
    if job.get("tracemalloc"):
        tracemalloc.start()
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = time.process_time()
    profiler = cProfile.Profile(time.process_time) if job.get("profile") else None
    started_at = time.time()
    wall_before = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    response = handler(event, context)
    if profiler is not None:
        profiler.disable()
    wall_s = time.perf_counter() - wall_before
    cpu_s = time.process_time() - cpu_before
    if profiler is not None:
        # NOTE: cProfile sees the calling thread only; a profiling job sets MAX_CONCURRENT_CALLS=1 so every
        # Personalize call runs on it. It counts CPU time (process_time), not wall time, plus its own overhead.
        profiler.dump_stats(job["profile"])
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    peak_bytes = None
    if tracemalloc.is_tracing():
        peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {
        "importS": import_s,
        **warmup,
        "startedAt": started_at,
        "wallS": wall_s,
        "cpuS": cpu_s,
        "userS": usage_after.ru_utime - usage_before.ru_utime,
        "systemS": usage_after.ru_stime - usage_before.ru_stime,
        "maxRssBeforeKiB": peak_before_kib,
        "maxRssAfterKiB": peak_rss_kib(),
        "tracemallocPeakBytes": peak_bytes,
        "batchItemFailures": len(response.get("batchItemFailures") or []),
    }


def peak_rss_kib() -> int:
    """The process's peak resident set size so far (``VmHWM``), in KiB."""
    # NOTE: not getrusage().ru_maxrss: on Linux a child started by fork + exec keeps the parent's high-water mark
    # from before the exec (here: moto and the emulator holding every stored record), while VmHWM belongs to the
    # new program's memory alone.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _context() -> Any:
    from tests.support.factories import FakeLambdaContext

    # NOTE: a clock-driven context, so the pipeline's deadline logic sees time pass as in Lambda.
    deadline = time.monotonic() + LAMBDA_TIMEOUT_MS / 1000
    return FakeLambdaContext(clock=lambda: max(0, int((deadline - time.monotonic()) * 1000)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
