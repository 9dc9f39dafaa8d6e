"""Start the emulator inside a test process and drive it through its admin API.

>>> with running_emulator() as emulator:
...     os.environ["AWS_ENDPOINT_URL_PERSONALIZE_EVENTS"] = emulator.url
...     ...  # boto3 calls
...     emulator.records("events")
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

from emulator.admin import ADMIN_PREFIX
from emulator.config import EmulatorConfig, default_config
from emulator.server import make_server
from emulator.service import Emulator
from emulator.store import Store


class EmulatorAdminError(RuntimeError):
    """The admin API refused a request."""


class EmulatorHandle:
    """A running emulator, reached through its admin API (works for one started elsewhere too)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def records(self, entity: str, *, target: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Stored elements of ``entity`` (events, action_interactions, items, users, actions) in arrival order.

        Each row: ``{"requestId", "receivedAt" (epoch seconds), "target", "duplicate", "request", "element"}``.
        """
        return self._get(f"records/{entity}", {"target": target, "limit": limit})

    def elements(self, entity: str) -> list[dict[str, Any]]:
        """Just the stored elements of ``entity``, as received."""
        return [row["element"] for row in self.records(entity)]

    def calls(self, operation: str | None = None) -> list[dict[str, Any]]:
        """Every request answered by the five operations, in arrival order.

        Each row: ``{"requestId", "operation", "status", "errorCode", "message", "elements", "target",
        "receivedAt", "invocationId", "attempt", "latencyMs"}``; status 0 means the connection was dropped and
        latencyMs is the latency fault injection added.
        """
        return self._get("calls", {"operation": operation})

    def counts(self) -> dict[str, int]:
        """Entity -> number of stored elements (duplicates included)."""
        return self._get("counts")

    def stats(self) -> dict[str, Any]:
        """Records, duplicates and calls by operation and outcome."""
        return self._get("stats")

    def resources(self) -> dict[str, Any]:
        """Configured dataset groups, trackers and datasets."""
        return self._get("resources")

    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "generation": <resets so far>, "inFlight": <operation requests being answered>}``."""
        return self._get("health")

    def reset(self, *, records: bool = True, faults: bool = True, quotas: bool = True) -> None:
        """Forget records and calls; restore the starting faults and quotas."""
        self._send("POST", "reset", {"records": records, "faults": faults, "quotas": quotas})

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        """Replace the fault settings (camelCase or snake_case keys, see docs/emulator.md); return them.

        Example: ``set_faults(error_rate=0.1, throttle_rate=0.05, latency={"distribution": "uniform",
        "minMs": 1, "maxMs": 5}, seed=7)``.
        """
        return self._send("PUT", "faults", {_camel(name): value for name, value in settings.items()})

    def faults(self) -> dict[str, Any]:
        return self._get("faults")

    def set_quota(self, operation: str, per_second: float, *, dataset_group: str | None = None) -> dict[str, Any]:
        """Set an operation's quota in requests per second (0 = unlimited) for every group or one."""
        body = {"operation": operation, "perSecond": per_second, "datasetGroup": dataset_group}
        return self._send("PUT", "quotas", body)

    def quotas(self) -> dict[str, Any]:
        return self._get("quotas")

    def import_jobs(self) -> dict[str, Any]:
        """``{"settings": {...}, "jobs": [DescribeDatasetImportJob's datasetImportJob, ...]}``, newest first."""
        return self._get("import-jobs")

    def set_import_jobs(self, **settings: Any) -> dict[str, Any]:
        """Change import job settings (``pending_seconds``, ``in_progress_seconds``, ``s3_endpoint_url``,
        ``check_access``, ``max_unfinished_jobs``); a reset restores the configured ones."""
        return self._send("PUT", "import-jobs", {_camel(name): value for name, value in settings.items()})

    def _get(self, route: str, query: Mapping[str, Any] | None = None) -> Any:
        params = {key: value for key, value in (query or {}).items() if value is not None}
        return self._send("GET", route + (f"?{urlencode(params)}" if params else ""), None)

    def _send(self, method: str, route: str, body: Any) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{ADMIN_PREFIX}{route}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise EmulatorAdminError(f"{method} {route}: {exc.code} {exc.read().decode()}") from exc


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


@contextmanager
def running_emulator(
    config: EmulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    db_path: str = ":memory:",
) -> Iterator[EmulatorHandle]:
    """Serve an emulator on a background thread (a free loopback port by default); stop it on exit.

    Parameters
    ----------
    config
        Resources, credentials, quotas and starting faults; ``default_config()`` (the ``demo`` group) when None.
    host, port
        Where to listen.
    db_path
        SQLite file for the store; in memory by default.
    """
    emulator = Emulator(config or default_config(), Store(db_path))
    server = make_server(emulator, host, port)
    thread = threading.Thread(target=server.serve_forever, name="personalize-events-emulator", daemon=True)
    thread.start()
    try:
        yield EmulatorHandle(server.url)
    finally:
        server.stop()
        thread.join()
        emulator.store.close()
