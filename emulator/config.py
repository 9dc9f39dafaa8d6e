"""The emulator's resources and settings: dataset groups, trackers, datasets, credentials, quotas, faults.

Configuration comes from an optional JSON (or TOML) file and from command-line flags; without either the
emulator serves one dataset group, ``demo``, whose identifiers are the constants below (the functions' tests and
``make demo`` use them).
"""

from __future__ import annotations

import json
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.signing import DEFAULT_MAX_CLOCK_SKEW_S

DEFAULT_GROUP_NAME = "demo"
DEFAULT_TRACKING_ID = "0c6a2e4f-7d1b-4b8e-9a51-5f2d3c4b6a70"
DEFAULT_ACTION_TRACKING_ID = "7f3e9b21-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"
DATASET_TYPES = ("ITEMS", "USERS", "ACTIONS")
SCHEMA_KINDS = ("INTERACTIONS", "ACTION_INTERACTIONS", *DATASET_TYPES)
"""Keys of a group's ``schemas``: the interactions datasets (behind the trackers) and the three dataset types."""


def dataset_arn(
    group: str, dataset_type: str, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT
) -> str:
    """ARN of a dataset of ``dataset_type`` (ITEMS, USERS, ACTIONS) in dataset group ``group``."""
    return f"arn:aws:personalize:{region}:{account}:dataset/{group}/{dataset_type}"


DEFAULT_DATASET_ARNS: dict[str, str] = {kind: dataset_arn(DEFAULT_GROUP_NAME, kind) for kind in DATASET_TYPES}
DEFAULT_CREDENTIALS: dict[str, str] = {"testing": "testing"}
"""Access key id -> secret key accepted by default (what tests/conftest.py and moto's docs use)."""

DEFAULT_QUOTAS: dict[str, float] = {
    # NOTE: developer guide quotas (adjustable): PutEvents 1,000 req/s, PutItems and PutUsers 10 req/s per
    # dataset group. PutActions and PutActionInteractions are undocumented; treated like PutItems.
    "PutEvents": 1000.0,
    "PutActionInteractions": 10.0,
    "PutItems": 10.0,
    "PutUsers": 10.0,
    "PutActions": 10.0,
}
"""Requests per second per dataset group per operation; 0 disables the quota."""

THROTTLE_CODES = {400: "ThrottlingException", 429: "TooManyRequestsException"}
"""HTTP status -> error code of a throttling answer."""


class ConfigError(ValueError):
    """The configuration file or a flag is invalid."""


@dataclass(frozen=True)
class DatasetGroup:
    """One dataset group: its two trackers, its datasets and optional Avro schemas."""

    name: str
    tracking_id: str | None
    action_tracking_id: str | None
    datasets: Mapping[str, str]
    """Dataset type (ITEMS, USERS, ACTIONS) -> dataset ARN."""
    schemas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Schema kind (see ``SCHEMA_KINDS``) -> Avro record schema; properties keys must be fields of it."""
    in_use: bool = False
    """Answer ResourceInUseException on dataset operations (a dataset group still being created)."""
    quotas: Mapping[str, float] = field(default_factory=dict)
    """Per-operation overrides of the emulator-wide quotas for this group."""


@dataclass
class EmulatorConfig:
    """Everything the emulator needs to start; build with ``default_config`` or ``load_config``."""

    groups: list[DatasetGroup]
    credentials: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CREDENTIALS))
    verify_signatures: bool = True
    quotas: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_QUOTAS))
    faults: dict[str, Any] = field(default_factory=dict)
    """Fault settings applied at start and restored by a reset (see ``emulator.faults.FaultSettings``)."""
    throttle_status: int = 400
    """400 answers ``ThrottlingException`` (what AWS JSON services send); 429 answers ``TooManyRequestsException``.
    Both are in every SDK's list of retryable throttling errors."""
    max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S
    """Signatures further than this from the emulator's clock are refused (replay protection); 0 disables the
    check (for tests that freeze time). Only checked when ``verify_signatures`` is on."""
    max_event_bytes: int = 10 * 1024
    """NOTE: developer guide quota "maximum size of an event: 10 KB", checked on each serialised element."""
    import_jobs: dict[str, Any] = field(default_factory=dict)
    """Dataset import job settings, ``importJobs`` in the file (see ``emulator.imports.ImportSettings``)."""


def default_group() -> DatasetGroup:
    """The ``demo`` dataset group whose identifiers are the module constants."""
    return DatasetGroup(
        name=DEFAULT_GROUP_NAME,
        tracking_id=DEFAULT_TRACKING_ID,
        action_tracking_id=DEFAULT_ACTION_TRACKING_ID,
        datasets=dict(DEFAULT_DATASET_ARNS),
    )


def default_config() -> EmulatorConfig:
    """Configuration with the ``demo`` dataset group only."""
    return EmulatorConfig(groups=[default_group()])


def derived_id(group: str, purpose: str) -> str:
    """Stable tracking id for a group configured without one (same name -> same id on every start)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"personalize-events-emulator/{group}/{purpose}"))


def group_from_spec(spec: str) -> DatasetGroup:
    """Build a group from a ``--dataset-group`` flag: ``NAME[:TRACKING_ID[:ACTION_TRACKING_ID]]``.

    Missing tracking ids are derived from the name; the group gets ITEMS, USERS and ACTIONS datasets.
    """
    name, _, rest = spec.partition(":")
    tracking_id, _, action_tracking_id = rest.partition(":")
    if not name:
        raise ConfigError(f"--dataset-group needs a name: {spec!r}")
    return DatasetGroup(
        name=name,
        tracking_id=tracking_id or derived_id(name, "events"),
        action_tracking_id=action_tracking_id or derived_id(name, "action-interactions"),
        datasets={kind: dataset_arn(name, kind) for kind in DATASET_TYPES},
    )


def _read_document(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    try:
        return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _schema(value: Any, base: Path) -> Mapping[str, Any]:
    # A schema is inline (an Avro record object) or a path to an .avsc/.json file relative to the config file.
    document = _read_document(base / value) if isinstance(value, str) else value
    if not isinstance(document, Mapping) or not isinstance(document.get("fields"), list):
        raise ConfigError(f"schema {value!r} is not an Avro record schema with a 'fields' list")
    return document


def _group(raw: Mapping[str, Any], base: Path) -> DatasetGroup:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"dataset group without a name: {raw!r}")
    region = raw.get("region", DEFAULT_REGION)
    account = str(raw.get("account", DEFAULT_ACCOUNT))
    datasets_raw = raw.get("datasets", list(DATASET_TYPES))
    if isinstance(datasets_raw, list):
        datasets = {kind: dataset_arn(name, kind, region, account) for kind in datasets_raw}
    else:
        datasets = dict(datasets_raw)
    unknown = set(datasets) - set(DATASET_TYPES)
    if unknown:
        raise ConfigError(f"group {name}: unknown dataset types {sorted(unknown)}; use {DATASET_TYPES}")
    schemas = {kind: _schema(value, base) for kind, value in raw.get("schemas", {}).items()}
    unknown = set(schemas) - set(SCHEMA_KINDS)
    if unknown:
        raise ConfigError(f"group {name}: unknown schema kinds {sorted(unknown)}; use {SCHEMA_KINDS}")
    return DatasetGroup(
        name=name,
        tracking_id=raw.get("trackingId", derived_id(name, "events")),
        action_tracking_id=raw.get("actionTrackingId", derived_id(name, "action-interactions")),
        datasets=datasets,
        schemas=schemas,
        in_use=bool(raw.get("inUse", False)),
        quotas={op: float(rate) for op, rate in raw.get("quotas", {}).items()},
    )


def load_config(path: str | Path) -> EmulatorConfig:
    """Read a JSON or TOML configuration file (format in docs/emulator.md)."""
    path = Path(path)
    raw = _read_document(path)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: the top level must be an object")
    groups = [_group(group, path.parent) for group in raw.get("datasetGroups", [])]
    if raw.get("includeDemoGroup", not groups):
        groups.insert(0, default_group())
    config = EmulatorConfig(groups=groups)
    if "credentials" in raw:
        config.credentials = {c["accessKeyId"]: c["secretAccessKey"] for c in raw["credentials"]}
    config.verify_signatures = bool(raw.get("verifySignatures", True))
    config.quotas.update({op: float(rate) for op, rate in raw.get("quotas", {}).items()})
    config.faults = dict(raw.get("faults", {}))
    config.max_event_bytes = int(raw.get("maxEventBytes", config.max_event_bytes))
    config.max_clock_skew_s = float(raw.get("maxClockSkewSeconds", config.max_clock_skew_s))
    config.throttle_status = int(raw.get("throttleStatus", config.throttle_status))
    config.import_jobs = dict(raw.get("importJobs", {}))
    check_config(config)
    return config


def check_config(config: EmulatorConfig) -> None:
    """Refuse ambiguous resources: a tracking id or dataset ARN may belong to one group only."""
    seen: dict[str, str] = {}
    for group in config.groups:
        ids = [group.tracking_id, group.action_tracking_id, *group.datasets.values()]
        for resource in filter(None, ids):
            if resource in seen:
                raise ConfigError(f"{resource} is used by groups {seen[resource]} and {group.name}")
            seen[resource] = group.name
    from emulator.imports import ImportSettings  # imports botocore's clients: only when configuring

    try:
        ImportSettings.from_dict(config.import_jobs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    if config.throttle_status not in THROTTLE_CODES:
        raise ConfigError(f"throttleStatus must be one of {sorted(THROTTLE_CODES)}")
    unknown = {op for op in config.quotas if op not in DEFAULT_QUOTAS}
    for group in config.groups:
        unknown |= {op for op in group.quotas if op not in DEFAULT_QUOTAS}
    if unknown:
        raise ConfigError(f"quotas for unknown operations {sorted(unknown)}; use {sorted(DEFAULT_QUOTAS)}")
