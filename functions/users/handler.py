"""Users from Kinesis, SQS or S3 -> Amazon Personalize PutUsers."""

from personalize_ingest.entities import USERS
from personalize_ingest.pipeline import make_handler

lambda_handler = make_handler(USERS)
