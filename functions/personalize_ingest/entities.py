"""What differs between the five entity types, in one table.

Everything else (validation limits, required members, types) is read from botocore's service model of
``personalize-events`` at run time, never copied here.
"""

from __future__ import annotations

from dataclasses import dataclass

from personalize_ingest.contract import DATASET_ARN_VARIABLE, TRACKING_ID_VARIABLE


@dataclass(frozen=True, slots=True)
class Entity:
    """One entity type and the Personalize Events operation that receives it."""

    name: str
    """Entity name as used in handler paths, reject messages and the ``entity`` metric dimension."""
    operation: str
    """botocore operation name, e.g. ``PutEvents``."""
    method: str
    """boto3 client method, e.g. ``put_events``."""
    target_variable: str
    """Environment variable holding the call target (tracking id or dataset ARN)."""
    target_member: str
    """Request member the target goes into (``trackingId`` or ``datasetArn``)."""
    list_member: str
    """Request member holding the list of elements (``eventList``, ``items`` ...)."""
    element_shape: str
    """Service-model shape of one element (``Event``, ``Item`` ...)."""
    request_members: tuple[str, ...] = ()
    """Record fields that go to the request, not the element (PutEvents: ``sessionId``, ``userId``)."""
    id_member: str | None = None
    """Element member identifying the upserted entity (items, users, actions); None for interactions."""
    timestamp_member: str | None = None
    """Element member holding the interaction time (``sentAt`` / ``timestamp``); None when there is none."""
    dataset_type: str | None = None
    """Suffix of a dataset ARN of this entity (``ITEMS``, ``USERS``, ``ACTIONS``); None for tracker targets."""
    default_calls_per_second: float = 0.0
    """Default token-bucket rate per target and container; 0 means unlimited (PutEvents' quota is 1,000 req/s)."""
    s3_prefix: str = ""
    """Ingest-bucket prefix of this entity's files."""

    @property
    def derives_event_id(self) -> bool:
        """Interactions carry an ``eventId``; when a record has none, one is derived from its source identity."""
        return self.timestamp_member is not None

    @property
    def uses_tracker(self) -> bool:
        return self.target_member == "trackingId"


EVENTS = Entity(
    name="events",
    operation="PutEvents",
    method="put_events",
    target_variable=TRACKING_ID_VARIABLE,
    target_member="trackingId",
    list_member="eventList",
    element_shape="Event",
    request_members=("sessionId", "userId"),
    timestamp_member="sentAt",
    s3_prefix="events/",
)
ACTION_INTERACTIONS = Entity(
    name="action_interactions",
    operation="PutActionInteractions",
    method="put_action_interactions",
    target_variable=TRACKING_ID_VARIABLE,
    target_member="trackingId",
    list_member="actionInteractions",
    element_shape="ActionInteraction",
    timestamp_member="timestamp",
    # NOTE: the PutActionInteractions quota is undocumented (REFERENCE.md); treated like PutItems.
    default_calls_per_second=10.0,
    s3_prefix="action-interactions/",
)
ITEMS = Entity(
    name="items",
    operation="PutItems",
    method="put_items",
    target_variable=DATASET_ARN_VARIABLE,
    target_member="datasetArn",
    list_member="items",
    element_shape="Item",
    id_member="itemId",
    dataset_type="ITEMS",
    default_calls_per_second=10.0,
    s3_prefix="items/",
)
USERS = Entity(
    name="users",
    operation="PutUsers",
    method="put_users",
    target_variable=DATASET_ARN_VARIABLE,
    target_member="datasetArn",
    list_member="users",
    element_shape="User",
    id_member="userId",
    dataset_type="USERS",
    default_calls_per_second=10.0,
    s3_prefix="users/",
)
ACTIONS = Entity(
    name="actions",
    operation="PutActions",
    method="put_actions",
    target_variable=DATASET_ARN_VARIABLE,
    target_member="datasetArn",
    list_member="actions",
    element_shape="Action",
    id_member="actionId",
    dataset_type="ACTIONS",
    default_calls_per_second=10.0,
    s3_prefix="actions/",
)

ENTITIES: dict[str, Entity] = {e.name: e for e in (EVENTS, ACTION_INTERACTIONS, ITEMS, USERS, ACTIONS)}
