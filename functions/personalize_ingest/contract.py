"""Names the functions and the stack must agree on, defined once.

The runtime (this package) reads them; the CDK stack (``infrastructure/``) writes the environment, selects the
metrics for its alarms and dashboard, grants the ``results/`` prefix and validates targets with the same names and
patterns. The module imports only the standard library: it is part of the Lambda bundle and loads at every cold
start.
"""

from __future__ import annotations

import re

# -- environment variables the stack sets and the runtime reads (personalize_ingest.config) --

TRACKING_ID_VARIABLE = "PERSONALIZE_TRACKING_ID"
"""Event tracker's tracking id (events, action_interactions)."""
DATASET_ARN_VARIABLE = "PERSONALIZE_DATASET_ARN"
"""Dataset ARN of the entity's type (items, users, actions)."""
REJECTS_QUEUE_URL = "REJECTS_QUEUE_URL"
MAX_CONCURRENT_CALLS = "MAX_CONCURRENT_CALLS"
MAX_ATTEMPTS = "MAX_ATTEMPTS"
CALLS_PER_SECOND = "CALLS_PER_SECOND"
DEADLINE_MARGIN_MS = "DEADLINE_MARGIN_MS"
DEFAULT_EVENT_TYPE = "DEFAULT_EVENT_TYPE"
DATASET_SCHEMA = "DATASET_SCHEMA"
"""The dataset's Avro schema (JSON) that records are also checked against (schema.py)."""
DATASET_SCHEMA_FILE = "DATASET_SCHEMA_FILE"
DATASET_SCHEMA_ARN = "DATASET_SCHEMA_ARN"
"""A schema ARN read with DescribeSchema, or ``dataset``: DescribeDataset of the target first."""
SCHEMA_FROM_DATASET = "dataset"
"""The value of ``DATASET_SCHEMA_ARN`` that means: the target dataset's own schema (DescribeDataset, then
DescribeSchema)."""
PERSONALIZE_CALL_PATH = "PERSONALIZE_CALL_PATH"
S3_FANOUT_MIN_BYTES = "S3_FANOUT_MIN_BYTES"
"""A plain object at least this large is split into byte ranges read by several invocations (standard queues)."""
S3_FANOUT_RANGE_BYTES = "S3_FANOUT_RANGE_BYTES"
S3_FANOUT_MAX_RANGES = "S3_FANOUT_MAX_RANGES"
S3_MAX_HOPS = "S3_MAX_HOPS"
"""Most continuations of one object (or range) before it stops with a result file saying why."""
BULK_IMPORT_ENABLED = "BULK_IMPORT_ENABLED"
"""The import route (bulk_routing.py) is on for this entity: ``true`` or ``false``."""
BULK_IMPORT_MIN_ROWS = "BULK_IMPORT_MIN_ROWS"
BULK_IMPORT_MIN_BYTES = "BULK_IMPORT_MIN_BYTES"
BULK_IMPORT_DATASET_ARN = "BULK_IMPORT_DATASET_ARN"
"""The dataset the import jobs load (the interactions entities' functions target a tracker, not a dataset)."""
BULK_IMPORT_ROLE_ARN = "BULK_IMPORT_ROLE_ARN"
"""The service role Personalize assumes to read the import files."""
BULK_IMPORT_SAMPLE_ROWS = "BULK_IMPORT_SAMPLE_ROWS"
BULK_IMPORT_WAIT_SECONDS = "BULK_IMPORT_WAIT_SECONDS"
TRACKER_BUCKET = "INGEST_BUCKET"
"""The import tracker's bucket: where the tracking markers and the result files are."""
TRACKER_ENTITIES = "BULK_IMPORT_ENTITIES"
"""The entities whose import jobs the tracker follows, comma-separated."""
METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
"""Powertools reads the CloudWatch namespace of the metrics from this variable."""
SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
"""Powertools reads the logs' ``service`` key from this variable."""

# -- metrics (personalize_ingest.observability publishes them; the stack's alarms and dashboard select them) --

RECORDS_RECEIVED = "RecordsReceived"
RECORDS_DELIVERED = "RecordsDelivered"
RECORDS_REJECTED = "RecordsRejected"
RECORDS_FAILED = "RecordsFailed"
API_CALLS = "ApiCalls"
THROTTLED_CALLS = "ThrottledCalls"
RETRIES = "Retries"
METRIC_NAMES = (
    RECORDS_RECEIVED,
    RECORDS_DELIVERED,
    RECORDS_REJECTED,
    RECORDS_FAILED,
    API_CALLS,
    THROTTLED_CALLS,
    RETRIES,
)
ENTITY_DIMENSION = "entity"
"""The one dimension every metric carries: the entity name."""

# -- S3 --

RESULTS_PREFIX = "results/"
"""Result files go to ``results/<object key>.result.json`` in the ingest bucket; the role may write only there."""
PROGRESS_FOLDER = ".progress/"
"""Progress markers of an object announced on a FIFO queue: ``results/<object key>.progress/...``; the role may
delete only there (:mod:`personalize_ingest.s3stage.progress`)."""

# -- targets --

DATASET_ARN_PATTERN = re.compile(
    r"^arn:(?P<partition>[a-z\d-]+):personalize:(?P<region>[a-z\d-]+):(?P<account>\d{12}):"
    r"dataset/(?P<group>[^/]+)/(?P<type>[A-Z_]+)$"
)
"""A dataset ARN; ``region`` is where the dataset (and so the calls) live, ``type`` is ITEMS, USERS ..."""
SCHEMA_ARN_PATTERN = re.compile(
    r"^arn:(?P<partition>[a-z\d-]+):personalize:(?P<region>[a-z\d-]+):(?P<account>\d{12}):"
    r"schema/(?P<name>[A-Za-z\d][A-Za-z\d_-]*)$"
)
"""A dataset schema's ARN (``DATASET_SCHEMA_ARN``); schemas are regional, like the datasets that use them."""
TRACKING_ID_PATTERN = re.compile(r"^[A-Za-z\d][A-Za-z\d-]{0,255}$")
"""An event tracker's tracking id. NOTE: it carries no region: a tracker of another region cannot be detected
before the first call, which then fails (docs/deploy.md, "Regions")."""
