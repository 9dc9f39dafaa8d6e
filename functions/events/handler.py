"""Item-interaction events from Kinesis, SQS or S3 -> Amazon Personalize PutEvents."""

from personalize_ingest.entities import EVENTS
from personalize_ingest.pipeline import make_handler

lambda_handler = make_handler(EVENTS)
