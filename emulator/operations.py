"""The five Personalize Events operations as the emulator serves them, read from botocore's service model.

Paths, request members, element shapes and every limit come from the model installed with boto3; only what the
model cannot say (which entity table stores an operation, which resource its target names, which member identifies
a repeated element) is written here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape, StructureShape

SERVICE_NAME = "personalize-events"
SIGNING_NAME = "personalize"


@dataclass(frozen=True)
class Operation:
    """How the emulator handles one operation."""

    name: str
    entity: str
    """Store table name, also used by the admin API (``events``, ``items`` ...)."""
    target_kind: str
    """``TRACKER`` (event tracker), ``ACTION_TRACKER`` or a dataset type (ITEMS, USERS, ACTIONS)."""
    schema_kind: str
    """Key of the dataset group's ``schemas`` that governs this operation's ``properties``."""
    key_member: str | None
    """Element member whose repetition within a target marks a duplicate (eventId, or the upserted id)."""
    forbidden_property_keys: frozenset[str]
    """Lower-cased keys refused inside ``properties``."""
    model: OperationModel

    @property
    def path(self) -> str:
        return str(self.model.http["requestUri"])

    @property
    def input_shape(self) -> StructureShape:
        shape = self.model.input_shape
        assert isinstance(shape, StructureShape)
        return shape

    @property
    def target_member(self) -> str:
        return "trackingId" if "trackingId" in self.input_shape.members else "datasetArn"

    @property
    def list_member(self) -> str:
        return next(name for name, shape in self.input_shape.members.items() if shape.type_name == "list")

    @property
    def element_shape(self) -> Shape:
        return self.input_shape.members[self.list_member].member  # type: ignore[attr-defined]

    @property
    def modelled_errors(self) -> frozenset[str]:
        return frozenset(shape.name for shape in self.model.error_shapes)


# NOTE: PutEvents documentation: "The following can't be included as a keyword for properties (case
# insensitive): userId, sessionId, eventType, timestamp, recommendationId, and impression." The same reserved
# interaction fields apply to action interactions.
_INTERACTION_RESERVED = frozenset(
    key.lower() for key in ("userId", "sessionId", "eventType", "timestamp", "recommendationId", "impression")
)

_TABLE = {
    # operation: (entity, target kind, schema kind, key member, forbidden properties keys)
    "PutEvents": ("events", "TRACKER", "INTERACTIONS", "eventId", _INTERACTION_RESERVED),
    "PutActionInteractions": (
        "action_interactions",
        "ACTION_TRACKER",
        "ACTION_INTERACTIONS",
        "eventId",
        _INTERACTION_RESERVED,
    ),
    "PutItems": ("items", "ITEMS", "ITEMS", "itemId", frozenset()),
    "PutUsers": ("users", "USERS", "USERS", "userId", frozenset()),
    "PutActions": ("actions", "ACTIONS", "ACTIONS", "actionId", frozenset()),
}


@cache
def service_model() -> ServiceModel:
    """botocore's model of ``personalize-events`` (loaded once)."""
    return botocore.session.get_session().get_service_model(SERVICE_NAME)


@cache
def operations() -> dict[str, Operation]:
    """Operation name -> Operation, for the five operations."""
    model = service_model()
    return {
        name: Operation(name, entity, target_kind, schema_kind, key, forbidden, model.operation_model(name))
        for name, (entity, target_kind, schema_kind, key, forbidden) in _TABLE.items()
    }


@cache
def operations_by_path() -> dict[str, Operation]:
    """Request path (``/events`` ...) -> Operation."""
    return {op.path: op for op in operations().values()}
