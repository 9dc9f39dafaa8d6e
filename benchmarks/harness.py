"""The parent side of the benchmarks: loopback servers, the S3 bucket, and workers that run the function.

moto (Kinesis/SQS/S3) and the Personalize Events emulator run in this process; every measurement runs in a fresh
worker process (:mod:`benchmarks.worker`) whose unmodified boto3 clients reach them through boto3's standard
endpoint variables, so the CPU time, memory and import time measured belong to the function alone.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from emulator.testing import EmulatorHandle, running_emulator
from tests.support.environment import FAKE_CREDENTIALS, LEAKY_VARIABLES, drain, target_environment
from tests.support.moto import running_moto

REPO_ROOT = Path(__file__).resolve().parent.parent
FAKE_AWS = {
    **FAKE_CREDENTIALS,
    "POWERTOOLS_METRICS_NAMESPACE": "PersonalizeIngestBench",
    "POWERTOOLS_SERVICE_NAME": "personalize-ingest-bench",
}
WORKER_TIMEOUT_S = 600
_JOB_VARIABLES = frozenset(
    {
        "AWS_PROFILE",
        "PERSONALIZE_TRACKING_ID",
        "PERSONALIZE_DATASET_ARN",
        "CALLS_PER_SECOND",
        "MAX_CONCURRENT_CALLS",
        "MAX_ATTEMPTS",
        "DEADLINE_MARGIN_MS",
        "DEFAULT_EVENT_TYPE",
    }
)
"""Variables a job sets for itself; kept out of the worker's starting environment."""


class WorkerFailed(RuntimeError):
    """A worker process exited with an error; the message holds the end of its stderr."""


class Bench:
    """Servers, bucket, rejects queue and a scratch folder shared by the scenarios of one run."""

    def __init__(self, moto_url: str, emulator: EmulatorHandle, scratch: Path) -> None:
        self.moto_url = moto_url
        self.emulator = emulator
        self.scratch = scratch
        self.s3 = boto3.client("s3", endpoint_url=moto_url)
        self.sqs = boto3.client("sqs", endpoint_url=moto_url)
        suffix = uuid.uuid4().hex[:8]
        self.bucket = f"bench-ingest-{suffix}"
        self.s3.create_bucket(Bucket=self.bucket)
        self.rejects_url = self.sqs.create_queue(QueueName=f"bench-rejects-{suffix}")["QueueUrl"]

    def put_object(self, key: str, body: bytes) -> dict[str, Any]:
        """Store ``body`` at ``key``; return the event spec of its S3 notification (see benchmarks.events)."""
        etag = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)["ETag"].strip('"')
        return {"type": "s3_via_sqs", "bucket": self.bucket, "key": key, "etag": etag, "size": len(body)}

    def take_object_result(self, key: str) -> dict[str, Any]:
        """The result document the function wrote for ``key`` (``results/<key>.result.json``); the object is
        then deleted, so the bucket holds only what runs next."""
        body = self.s3.get_object(Bucket=self.bucket, Key=f"results/{key}.result.json")["Body"].read()
        self.s3.delete_object(Bucket=self.bucket, Key=key)
        return json.loads(body)

    def invoke(
        self,
        worker: Worker,
        entity: str,
        event: dict[str, Any],
        warmup: dict[str, Any] | None,
        *,
        traced: bool = False,
        env: dict[str, str] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run one measured invocation of ``entity``'s function in ``worker`` (after ``warmup``, when given, and
        with the variables ``env`` set); return the worker's measurement and the emulator's :meth:`call_summary`
        of it."""
        job = {"kind": "invoke", "entity": entity, "event": event, "warmup": warmup, "tracemalloc": traced}
        measured = worker.run(job, self.function_env(entity, **(env or {})))
        return measured, self.call_summary()

    def rejects_count(self) -> int:
        """Messages now in the rejects queue (drained, so the next run starts from zero)."""
        return len(drain(self.sqs, self.rejects_url))

    def function_env(self, entity: str, **overrides: str) -> dict[str, str]:
        """The per-job environment of ``entity``'s function: its target, plus ``overrides``."""
        return {**target_environment(entity), **overrides}

    @contextmanager
    def worker(self) -> Iterator[Worker]:
        """A worker process whose function reaches the loopback servers; stopped on exit."""
        env = {
            **{name: value for name, value in os.environ.items() if name not in _JOB_VARIABLES},
            **FAKE_AWS,
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS": self.emulator.url,
            "REJECTS_QUEUE_URL": self.rejects_url,
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "functions"), str(REPO_ROOT)]),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        worker = Worker(env, self.scratch / f"worker-{uuid.uuid4().hex[:8]}.stdout", self.emulator.url)
        try:
            yield worker
        finally:
            worker.close()

    def call_summary(self, emulator: EmulatorHandle | None = None) -> dict[str, Any]:
        """What the emulator (default: the bench's own) answered since its last reset: calls by outcome, elements
        stored, call times."""
        calls = (emulator or self.emulator).calls()
        accepted = [c for c in calls if c["status"] == 200]
        throttled = [c for c in calls if c["errorCode"] == "ThrottlingException"]
        times = sorted(c["receivedAt"] for c in calls)
        return {
            "calls": len(calls),
            "acceptedCalls": len(accepted),
            "throttledCalls": len(throttled),
            "otherErrors": len(calls) - len(accepted) - len(throttled),
            "elements": sum(c["elements"] for c in accepted),
            "maxElementsPerCall": max((c["elements"] for c in accepted), default=0),
            "callTimes": times,
        }


class Worker:
    """One :mod:`benchmarks.worker` process: jobs go in on its stdin, results come back on a pipe of their own
    (its stdout is the function's log, kept in a file)."""

    def __init__(self, env: dict[str, str], stdout_path: Path, emulator_url: str) -> None:
        self.emulator_url = emulator_url
        self._stdout_path = stdout_path
        self._stdout = stdout_path.open("wb")
        self._stderr_path = stdout_path.with_suffix(".stderr")
        self._stderr = self._stderr_path.open("wb")
        read_fd, write_fd = os.pipe()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", str(write_fd)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=self._stdout,
            stderr=self._stderr,
            pass_fds=(write_fd,),
            text=True,
        )
        os.close(write_fd)
        self._results = os.fdopen(read_fd, "r", encoding="utf-8")

    def run(self, job: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
        """Run one job (with ``env`` set for it); return its result plus the last EMF document it printed."""
        assert self._process.stdin is not None
        offset = self._stdout_path.stat().st_size
        self._process.stdin.write(json.dumps({**job, "env": env or {}, "emulatorUrl": self.emulator_url}) + "\n")
        self._process.stdin.flush()
        line = self._results.readline()
        if not line:
            self.close()
            raise WorkerFailed(f"the worker stopped during a {job.get('kind')} job:\n{self._stderr_tail()}")
        result: dict[str, Any] = json.loads(line)
        if "error" in result:
            raise WorkerFailed(f"{job.get('kind')} {job.get('entity', '')} job failed:\n{result['error']}")
        result["emf"] = _last_emf(self._stdout_path, offset)
        return result

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=WORKER_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._results.close()
        self._stdout.close()
        self._stderr.close()

    def _stderr_tail(self) -> str:
        return self._stderr_path.read_text(errors="replace")[-3000:]


def _last_emf(stdout_file: Path, offset: int) -> dict[str, Any] | None:
    last = None
    with stdout_file.open("rb") as output:
        output.seek(offset)
        for raw in output:
            line = raw.decode("utf-8", errors="replace")
            if line.startswith("{") and '"_aws"' in line:
                last = line
    return json.loads(last) if last else None


@contextmanager
def running_bench() -> Iterator[Bench]:
    """Start moto and the emulator on free loopback ports with fake credentials; stop them on exit."""
    os.environ.update(FAKE_AWS)
    for name in LEAKY_VARIABLES:
        os.environ.pop(name, None)
    # NOTE: moto's werkzeug server logs every request at INFO; the table is the output here.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as scratch,
        running_moto() as moto_url,
        running_emulator() as emulator,
    ):
        yield Bench(moto_url, emulator, Path(scratch))
