"""SQLite store of what the emulator accepted (one table per entity) and of every call it answered.

One connection shared by the server's threads behind a lock: writes are tiny and serialising them keeps the
duplicate check (look up the key, then insert) atomic.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ENTITY_TABLES = ("events", "action_interactions", "items", "users", "actions")

_ENTITY_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    received_at REAL NOT NULL,
    target TEXT NOT NULL,
    element_key TEXT,
    duplicate INTEGER NOT NULL,
    request TEXT NOT NULL,
    element TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS {table}_key ON {table} (target, element_key);
"""
_CALLS_DDL = """
CREATE TABLE IF NOT EXISTS calls (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    received_at REAL NOT NULL,
    operation TEXT NOT NULL,
    target TEXT,
    status INTEGER NOT NULL,
    error_code TEXT,
    message TEXT,
    elements INTEGER NOT NULL,
    invocation_id TEXT,
    attempt INTEGER,
    latency_ms REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Call:
    """One answered request to a Personalize Events operation (accepted or not)."""

    request_id: str
    received_at: float
    operation: str
    target: str | None
    status: int
    """HTTP status answered; 0 when the connection was dropped without an answer."""
    error_code: str | None
    message: str | None
    elements: int
    invocation_id: str | None
    """``amz-sdk-invocation-id`` header: the same for every attempt of one SDK call."""
    attempt: int | None
    """Attempt number from the ``amz-sdk-request`` header (1 = first try)."""
    latency_ms: float = 0.0
    """Latency added by fault injection before answering."""


class Store:
    """Accepted records and the call log, in SQLite (``:memory:`` by default, or a file for ``dump``)."""

    def __init__(self, path: str = ":memory:") -> None:
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._connection.row_factory = sqlite3.Row
        with self._lock:
            for table in ENTITY_TABLES:
                self._connection.executescript(_ENTITY_DDL.format(table=table))
            self._connection.executescript(_CALLS_DDL)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def add_records(
        self,
        entity: str,
        *,
        request_id: str,
        received_at: float,
        target: str,
        request: Mapping[str, Any],
        elements: Sequence[Mapping[str, Any]],
        key_member: str | None,
    ) -> list[bool]:
        """Store the elements of one accepted call; return each one's duplicate flag.

        An element is a duplicate when an earlier element for the same target carried the same ``key_member``
        value (eventId for interactions, the entity id for items, users and actions).
        """
        table = _table(entity)
        request_json = json.dumps(request, separators=(",", ":"))
        flags = []
        with self._lock:
            self._connection.execute("BEGIN")
            try:
                for element in elements:
                    key = element.get(key_member) if key_member else None
                    duplicate = key is not None and (
                        self._connection.execute(
                            f"SELECT 1 FROM {table} WHERE target = ? AND element_key = ? LIMIT 1", (target, key)
                        ).fetchone()
                        is not None
                    )
                    self._connection.execute(
                        f"INSERT INTO {table} (request_id, received_at, target, element_key, duplicate, request,"
                        " element) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            request_id,
                            received_at,
                            target,
                            key,
                            int(duplicate),
                            request_json,
                            json.dumps(element, separators=(",", ":")),
                        ),
                    )
                    flags.append(duplicate)
                self._connection.execute("COMMIT")
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
        return flags

    def add_call(self, call: Call) -> None:
        """Append one answered request to the call log."""
        with self._lock:
            self._connection.execute(
                "INSERT INTO calls (request_id, received_at, operation, target, status, error_code, message,"
                " elements, invocation_id, attempt, latency_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call.request_id,
                    call.received_at,
                    call.operation,
                    call.target,
                    call.status,
                    call.error_code,
                    call.message,
                    call.elements,
                    call.invocation_id,
                    call.attempt,
                    call.latency_ms,
                ),
            )

    def records(self, entity: str, *, target: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Stored elements of ``entity`` in arrival order, as the admin API returns them."""
        table = _table(entity)
        sql = f"SELECT * FROM {table}"
        params: list[Any] = []
        if target is not None:
            sql += " WHERE target = ?"
            params.append(target)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_record_row(row) for row in self._query(sql, params)]

    def calls(self, *, operation: str | None = None) -> list[dict[str, Any]]:
        """The call log in arrival order, as the admin API returns it."""
        sql, params = "SELECT * FROM calls", []
        if operation is not None:
            sql += " WHERE operation = ?"
            params.append(operation)
        return [_call_row(row) for row in self._query(sql + " ORDER BY seq", params)]

    def counts(self) -> dict[str, int]:
        """Entity -> number of stored elements (duplicates included)."""
        return {table: self._scalar(f"SELECT COUNT(*) FROM {table}") for table in ENTITY_TABLES}

    def stats(self) -> dict[str, Any]:
        """Counts of records, duplicates and calls by operation and outcome."""
        calls: dict[str, dict[str, int]] = {}
        for row in self._query(
            "SELECT operation, status, error_code, COUNT(*) AS n FROM calls GROUP BY 1, 2, 3", []
        ):
            outcome = "OK" if row["status"] == 200 else row["error_code"] or str(row["status"])
            calls.setdefault(row["operation"], {})[outcome] = row["n"]
        return {
            "records": self.counts(),
            "duplicates": {
                table: self._scalar(f"SELECT COUNT(*) FROM {table} WHERE duplicate = 1") for table in ENTITY_TABLES
            },
            "calls": calls,
        }

    def reset(self) -> None:
        """Forget every record and call."""
        with self._lock:
            for table in (*ENTITY_TABLES, "calls"):
                self._connection.execute(f"DELETE FROM {table}")

    def _query(self, sql: str, params: Iterable[Any]) -> list[sqlite3.Row]:
        with self._lock:
            return self._connection.execute(sql, list(params)).fetchall()

    def _scalar(self, sql: str) -> int:
        with self._lock:
            return int(self._connection.execute(sql).fetchone()[0])


def _table(entity: str) -> str:
    # Table names cannot be bound parameters: only the five known names reach SQL.
    if entity not in ENTITY_TABLES:
        raise KeyError(f"unknown entity {entity!r}; expected one of {ENTITY_TABLES}")
    return entity


def _record_row(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "requestId": row["request_id"],
        "receivedAt": row["received_at"],
        "target": row["target"],
        "duplicate": bool(row["duplicate"]),
        "request": json.loads(row["request"]),
        "element": json.loads(row["element"]),
    }


def _call_row(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "requestId": row["request_id"],
        "operation": row["operation"],
        "status": row["status"],
        "errorCode": row["error_code"],
        "message": row["message"],
        "elements": row["elements"],
        "target": row["target"],
        "receivedAt": row["received_at"],
        "invocationId": row["invocation_id"],
        "attempt": row["attempt"],
        "latencyMs": row["latency_ms"],
    }
