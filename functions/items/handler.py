"""Items from Kinesis, SQS or S3 -> Amazon Personalize PutItems."""

from personalize_ingest.entities import ITEMS
from personalize_ingest.pipeline import make_handler

lambda_handler = make_handler(ITEMS)
