"""Actions from Kinesis, SQS or S3 -> Amazon Personalize PutActions."""

from personalize_ingest.entities import ACTIONS
from personalize_ingest.pipeline import make_handler

lambda_handler = make_handler(ACTIONS)
