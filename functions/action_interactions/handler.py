"""Action interactions from Kinesis, SQS or S3 -> Amazon Personalize PutActionInteractions."""

from personalize_ingest.entities import ACTION_INTERACTIONS
from personalize_ingest.pipeline import make_handler

lambda_handler = make_handler(ACTION_INTERACTIONS)
