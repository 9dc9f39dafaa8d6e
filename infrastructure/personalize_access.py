"""The policy documents that let Amazon Personalize read the ingest prefixes, as plain JSON (no CDK here).

NOTE: AWS documents two grants for a dataset import job
(https://docs.aws.amazon.com/personalize/latest/dg/granting-personalize-s3-access.html): the service role it passes
must be trusted by ``personalize.amazonaws.com`` and allow ``s3:GetObject`` / ``s3:ListBucket``, and the bucket's
policy must allow the ``personalize.amazonaws.com`` principal the same. Missing either fails the job with
"Insufficient privileges for accessing data in Amazon S3".

The stack (infrastructure/bulk_import.py) builds its role and bucket policy from these functions, and the
integration tests put the very same documents on moto's IAM and S3, so the emulator's access check judges what
the stack deploys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PERSONALIZE_PRINCIPAL = "personalize.amazonaws.com"


def trust_policy() -> dict[str, Any]:
    """Trust policy of the service role: Personalize may assume it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": PERSONALIZE_PRINCIPAL}, "Action": "sts:AssumeRole"}
        ],
    }


def read_statements(bucket_arn: str, prefixes: Sequence[str], *, principal: bool) -> list[dict[str, Any]]:
    """Statements allowing GetObject on exactly ``prefixes`` and ListBucket restricted to them.

    Parameters
    ----------
    bucket_arn
        ``arn:aws:s3:::<bucket>`` (a CDK token in the stack).
    prefixes
        Ingest prefixes, each ending in ``/`` (``items/``).
    principal
        True for a bucket policy statement (names the Personalize service principal), False for the role's.
    """
    who: dict[str, Any] = {"Principal": {"Service": PERSONALIZE_PRINCIPAL}} if principal else {}
    return [
        {
            "Sid": "PersonalizeReadsIngestObjects",
            "Effect": "Allow",
            **who,
            "Action": "s3:GetObject",
            "Resource": [f"{bucket_arn}/{prefix}*" for prefix in prefixes],
        },
        {
            "Sid": "PersonalizeListsIngestPrefixes",
            "Effect": "Allow",
            **who,
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
        },
    ]


def role_policy(bucket_arn: str, prefixes: Sequence[str]) -> dict[str, Any]:
    """Identity policy of the service role."""
    return {"Version": "2012-10-17", "Statement": read_statements(bucket_arn, prefixes, principal=False)}


def bucket_policy(bucket_arn: str, prefixes: Sequence[str]) -> dict[str, Any]:
    """Bucket policy granting the Personalize principal the same read access."""
    return {"Version": "2012-10-17", "Statement": read_statements(bucket_arn, prefixes, principal=True)}
