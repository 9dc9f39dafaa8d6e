"""The admin API under ``/_emulator/``: inspect the store and the call log, reset, change faults and quotas.

Admin requests are not signed and never throttled or faulted. Bodies and answers are JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from emulator.faults import FaultSettings, FaultSettingsError
from emulator.imports import ImportSettings
from emulator.operations import operations
from emulator.service import Answer, Emulator
from emulator.store import ENTITY_TABLES

ADMIN_PREFIX = "/_emulator/"

Route = Callable[[Emulator, Mapping[str, str], Any], Any]


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _health(emulator: Emulator, query: Mapping[str, str], body: Any) -> Any:
    return {"status": "ok", "generation": emulator.generation, "inFlight": emulator.in_flight}


def _resources(emulator: Emulator, query: Mapping[str, str], body: Any) -> Any:
    return emulator.resources()


def _calls(emulator: Emulator, query: Mapping[str, str], body: Any) -> Any:
    return emulator.store.calls(operation=query.get("operation"))


def _counts(emulator: Emulator, query: Mapping[str, str], body: Any) -> Any:
    return emulator.store.counts()


def _stats(emulator: Emulator, query: Mapping[str, str], body: Any) -> Any:
    return emulator.store.stats()


def _reset(emulator: Emulator, query: Mapping[str, str], body: Any) -> Any:
    body = body or {}
    emulator.reset(
        records=bool(body.get("records", True)),
        faults=bool(body.get("faults", True)),
        quotas=bool(body.get("quotas", True)),
    )
    return {"reset": True}


def _get_faults(emulator: Emulator, query: Mapping[str, str], body: Any) -> Any:
    return emulator.faults.settings.as_dict()


def _put_faults(emulator: Emulator, query: Mapping[str, str], body: Any) -> Any:
    try:
        emulator.faults.set(FaultSettings.from_dict(body or {}))
    except (FaultSettingsError, TypeError, ValueError) as exc:
        raise AdminError(400, str(exc)) from exc
    return emulator.faults.settings.as_dict()


def _get_quotas(emulator: Emulator, query: Mapping[str, str], body: Any) -> Any:
    return emulator.quotas.rates()


def _put_quotas(emulator: Emulator, query: Mapping[str, str], body: Any) -> Any:
    if not isinstance(body, dict) or body.get("operation") not in operations():
        raise AdminError(400, f"body needs 'operation' (one of {sorted(operations())}) and 'perSecond'")
    try:
        emulator.quotas.set_rate(body["operation"], float(body["perSecond"]), body.get("datasetGroup"))
    except (KeyError, TypeError, ValueError) as exc:
        raise AdminError(400, f"invalid quota: {exc}") from exc
    return emulator.quotas.rates()


def _get_import_jobs(emulator: Emulator, query: Mapping[str, str], body: Any) -> Any:
    jobs = emulator.control_plane.jobs
    return {"settings": jobs.settings.as_dict(), "jobs": [job.describe() for job in jobs.listing(None)]}


def _put_import_jobs(emulator: Emulator, query: Mapping[str, str], body: Any) -> Any:
    jobs = emulator.control_plane.jobs
    try:
        jobs.change(ImportSettings.from_dict({**jobs.settings.as_dict(), **(body or {})}))
    except (TypeError, ValueError) as exc:
        raise AdminError(400, str(exc)) from exc
    return jobs.settings.as_dict()


_ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "health"): _health,
    ("GET", "resources"): _resources,
    ("GET", "calls"): _calls,
    ("GET", "counts"): _counts,
    ("GET", "stats"): _stats,
    ("POST", "reset"): _reset,
    ("GET", "faults"): _get_faults,
    ("PUT", "faults"): _put_faults,
    ("GET", "quotas"): _get_quotas,
    ("PUT", "quotas"): _put_quotas,
    ("GET", "import-jobs"): _get_import_jobs,
    ("PUT", "import-jobs"): _put_import_jobs,
}


def handle_admin(emulator: Emulator, method: str, path: str, query_string: str, raw_body: bytes) -> Answer:
    """Answer one admin request (``path`` starts with ``ADMIN_PREFIX``)."""
    name = path[len(ADMIN_PREFIX) :].strip("/")
    query = {key: values[-1] for key, values in parse_qs(query_string).items()}
    try:
        body = json.loads(raw_body) if raw_body.strip() else None
    except ValueError:
        return _json(400, {"error": "body is not valid JSON"})
    try:
        if name.startswith("records/") and method == "GET":
            entity = name.removeprefix("records/")
            if entity not in ENTITY_TABLES:
                raise AdminError(404, f"unknown entity {entity!r}; expected one of {list(ENTITY_TABLES)}")
            if not query.get("limit", "0").isdigit():
                raise AdminError(400, "limit must be a non-negative integer")
            limit = int(query["limit"]) if "limit" in query else None
            return _json(200, emulator.store.records(entity, target=query.get("target"), limit=limit))
        route = _ROUTES.get((method, name))
        if route is None:
            known = sorted(
                {f"{m} {ADMIN_PREFIX}{n}" for m, n in _ROUTES} | {f"GET {ADMIN_PREFIX}records/<entity>"}
            )
            raise AdminError(404, f"no admin route {method} {path}; known: {known}")
        return _json(200, route(emulator, query, body))
    except AdminError as exc:
        return _json(exc.status, {"error": str(exc)})


def _json(status: int, document: Any) -> Answer:
    return Answer(status, json.dumps(document).encode(), {"Content-Type": "application/json"})
