"""The secret: parsed strictly, errors name keys and never values, never logged."""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sender.config import SecretStore, parse_config
from sender.errors import ConfigError
from tests.conftest import SECRET


def test_contract_secret_parses(secret: dict[str, Any]) -> None:
    config = parse_config(json.dumps(secret))
    assert config.from_name == "JADA Sailing"
    assert config.from_email == "admin@queenofsandiego.com"
    assert config.from_domain == "queenofsandiego.com"
    assert config.reply_to == ("bookings@queenofsandiego.com",)
    assert config.configuration_set == "jada-blasts"
    assert config.from_address == "JADA Sailing <admin@queenofsandiego.com>"


def test_only_from_address_is_required() -> None:
    config = parse_config({"from_address": "admin@queenofsandiego.com"})
    assert config.from_name is None and config.reply_to == () and config.role_arn is None


@pytest.mark.parametrize(
    ("secret", "key"),
    [
        ({}, "from_address"),
        ({"from_address": "not an address"}, "from_address"),
        ({"from_address": "a@example.com, b@example.com"}, "from_address"),
        ({"from_address": "A <a@example.com>\r\nBcc: x@example.com"}, "from_address"),
        ({"from_address": "a@example.com", "reply_to": [3]}, "reply_to"),
        ({"from_address": "a@example.com", "reply_to": ["nope"]}, "reply_to"),
        ({"from_address": "a@example.com", "role_arn": "role"}, "role_arn"),
        ({"from_address": "a@example.com", "smtp_password": "p"}, "smtp_username"),
        ({"from_address": "a@example.com", "surprise": 1}, "surprise"),
        ({"from_address": "a@example.com", "list_unsubscribe": "javascript:x"}, "list_unsubscribe"),
    ],
)
def test_invalid_secret_names_the_key(secret: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(secret)
    assert key in info.value.message


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", "42"])
def test_secret_that_is_not_a_json_object_is_a_config_error(raw: str) -> None:
    with pytest.raises(ConfigError):
        parse_config(raw)


def test_smtp_password_is_not_in_repr_or_error(secret: dict[str, Any]) -> None:
    config = parse_config(secret)
    assert SECRET["smtp_password"] not in repr(config)
    bad = dict(secret, reply_to=[SECRET["smtp_password"]])
    with pytest.raises(ConfigError) as info:
        parse_config(bad)
    assert SECRET["smtp_password"] not in str(info.value)


@mock_aws
def test_secret_store_reads_and_caches_from_secrets_manager(secret: dict[str, Any]) -> None:
    client = boto3.client("secretsmanager")
    client.create_secret(Name="jada/sender", SecretString=json.dumps(secret))
    store = SecretStore(client)
    assert store.load("jada/sender").from_email == "admin@queenofsandiego.com"
    client.update_secret(SecretId="jada/sender", SecretString=json.dumps(dict(secret, from_address="x@example.com")))
    assert store.load("jada/sender").from_email == "admin@queenofsandiego.com"  # cached (max age)
    assert store.load("jada/sender", force=True).from_email == "x@example.com"


@mock_aws
def test_missing_secret_is_a_config_error_naming_the_secret() -> None:
    store = SecretStore(boto3.client("secretsmanager"))
    with pytest.raises(ConfigError, match="jada/missing"):
        store.load("jada/missing")
    with pytest.raises(ConfigError, match="SENDER_SECRET_ID"):
        store.load(None)


@mock_aws
def test_secret_values_never_reach_logs(secret: dict[str, Any], caplog: pytest.LogCaptureFixture,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    client = boto3.client("secretsmanager")
    client.create_secret(Name="jada/sender", SecretString=json.dumps(dict(secret, reply_to=["bad"])))
    with pytest.raises(ConfigError) as info:
        SecretStore(client).load("jada/sender")
    out = capsys.readouterr()
    everything = caplog.text + out.out + out.err + str(info.value)
    assert SECRET["smtp_password"] not in everything
    assert SECRET["smtp_username"] not in everything


@pytest.mark.parametrize(
    "value", ["mailto:u@example.com\nX-Evil: 1", "https://example.com/u a", "https://e.com/>x", "mailto:a@b.c,d@e.f",
              "https://" + "x" * 2000]
)
def test_list_unsubscribe_must_be_one_header_safe_uri(value: str) -> None:
    with pytest.raises(ConfigError, match="list_unsubscribe"):
        parse_config({"from_address": "a@example.com", "list_unsubscribe": value})
