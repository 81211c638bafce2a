"""The one powertools Logger and Metrics of the package (service name from POWERTOOLS_SERVICE_NAME)."""

from __future__ import annotations

import logging
import os
import sys

from aws_lambda_powertools import Logger, Metrics

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "jada-blast-sender")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "JadaBlastSender")

# The CLI sets BLAST_LOG_TO_STDERR so log lines never mix with the JSON it prints on stdout.
_handler = logging.StreamHandler(sys.stderr) if os.environ.get("BLAST_LOG_TO_STDERR") else None
logger = Logger(service=SERVICE, logger_handler=_handler)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# botocore logs whole request and response bodies at DEBUG: a GetSecretValue answer holds the secret.
# These loggers never go below INFO, whatever level someone sets for debugging.
WIRE_LOGGERS = ("botocore.parsers", "botocore.endpoint", "botocore.auth", "botocore.awsrequest", "urllib3")
for _name in WIRE_LOGGERS:
    logging.getLogger(_name).setLevel(logging.INFO)
