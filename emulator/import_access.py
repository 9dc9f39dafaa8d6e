"""Can Amazon Personalize read the import's input? The two grants AWS documents, checked against IAM and S3.

NOTE: the developer guide requires both (https://docs.aws.amazon.com/personalize/latest/dg/granting-personalize-s3-access.html):
a service role Personalize assumes (trust ``personalize.amazonaws.com``) whose policies allow ``s3:GetObject`` on
the objects and ``s3:ListBucket`` on the bucket, and a bucket policy that allows the ``personalize.amazonaws.com``
principal the same. Missing either fails the job with "Insufficient privileges for accessing data in Amazon S3".

This is a small evaluator of Allow statements (actions and resources with ``*`` wildcards, no conditions, explicit
Deny honoured), enough to tell a stack that grants the access from one that forgets a half of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

PERSONALIZE_PRINCIPAL = "personalize.amazonaws.com"


def access_problem(iam: Any, s3: Any, role_arn: str | None, bucket: str, key: str) -> str | None:
    """Why Personalize could not read ``s3://bucket/key`` with ``role_arn``; None when both grants are there."""
    object_arn = f"arn:aws:s3:::{bucket}/{key}"
    bucket_arn = f"arn:aws:s3:::{bucket}"
    if not role_arn:
        return "the job has no roleArn"
    role_name = role_arn.rsplit("/", 1)[-1]
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except (ClientError, BotoCoreError) as exc:
        return f"the role {role_arn} cannot be read ({_code(exc)})"
    trust = _statements(role.get("AssumeRolePolicyDocument"))
    if not _allows(trust, "sts:AssumeRole", None, PERSONALIZE_PRINCIPAL):
        return f"the role {role_arn} does not trust {PERSONALIZE_PRINCIPAL}"
    role_statements = list(_role_statements(iam, role_name))
    if not _allows(role_statements, "s3:GetObject", object_arn):
        return f"the role {role_arn} does not allow s3:GetObject on {object_arn}"
    if not _allows(role_statements, "s3:ListBucket", bucket_arn):
        return f"the role {role_arn} does not allow s3:ListBucket on {bucket_arn}"
    try:
        policy = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    except (ClientError, BotoCoreError) as exc:
        return f"the bucket {bucket} has no policy for {PERSONALIZE_PRINCIPAL} ({_code(exc)})"
    bucket_statements = _statements(policy)
    for action, arn in (("s3:GetObject", object_arn), ("s3:ListBucket", bucket_arn)):
        if not _allows(bucket_statements, action, arn, PERSONALIZE_PRINCIPAL):
            return f"the bucket policy of {bucket} does not allow {PERSONALIZE_PRINCIPAL} {action} on {arn}"
    return None


def _role_statements(iam: Any, role_name: str) -> Iterable[Mapping[str, Any]]:
    for name in iam.list_role_policies(RoleName=role_name).get("PolicyNames", []):
        yield from _statements(iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])
    for attached in iam.list_attached_role_policies(RoleName=role_name).get("AttachedPolicies", []):
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        version = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"])
        yield from _statements(version["PolicyVersion"]["Document"])


def _statements(document: Any) -> list[Mapping[str, Any]]:
    if isinstance(document, str):
        document = json.loads(document)
    statements = (document or {}).get("Statement", [])
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _allows(
    statements: Iterable[Mapping[str, Any]], action: str, resource: str | None, principal: str | None = None
) -> bool:
    allowed = False
    for statement in statements:
        if not _matches(statement, action, resource, principal):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def _matches(statement: Mapping[str, Any], action: str, resource: str | None, principal: str | None) -> bool:
    if not any(fnmatchcase(action.lower(), pattern.lower()) for pattern in _list(statement.get("Action"))):
        return False
    resources = _list(statement.get("Resource"))
    if resource is not None and not any(fnmatchcase(resource, pattern) for pattern in resources):
        return False
    if principal is not None:
        named = statement.get("Principal")
        services = _list(named.get("Service")) if isinstance(named, Mapping) else _list(named)
        if principal not in services and "*" not in services:
            return False
    return True


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "error"))
    return exc.__class__.__name__
