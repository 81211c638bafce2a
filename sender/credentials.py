"""Credentials for SES when it lives in another account: assume `role_arn`, refreshed before expiry."""

from __future__ import annotations

from typing import Any

import boto3
import botocore.session
from botocore.credentials import RefreshableCredentials

from sender.settings import default_region

SESSION_NAME = "jada-blast-sender"


def assumed_session(role_arn: str, *, region: str | None = None, sts_client: Any = None) -> boto3.Session:
    """A boto3 Session whose credentials come from sts:AssumeRole and refresh themselves."""
    client = sts_client if sts_client is not None else boto3.client("sts", region_name=region or default_region())

    def fetch() -> dict[str, str]:
        creds = client.assume_role(RoleArn=role_arn, RoleSessionName=SESSION_NAME, DurationSeconds=3600)["Credentials"]
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": creds["Expiration"].isoformat(),
        }

    credentials = RefreshableCredentials.create_from_metadata(
        metadata=fetch(), refresh_using=fetch, method="sts-assume-role"
    )
    core = botocore.session.get_session()
    core._credentials = credentials  # type: ignore[attr-defined]
    if region:
        core.set_config_variable("region", region)
    return boto3.Session(botocore_session=core)
