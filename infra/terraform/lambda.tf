resource "aws_cloudwatch_log_group" "lambda" {
  #checkov:skip=CKV_AWS_338:Retention is a variable (default 90 days) on purpose: every line names a recipient, and the delivery ledger, not the log, is the durable record.
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

locals {
  # CONTRACT "Environment of the function"; optional caps are left unset rather than set to a default.
  function_environment = merge(
    {
      SENDER_SECRET_ID             = aws_secretsmanager_secret.this.arn
      DELIVERY_TABLE               = aws_dynamodb_table.ledger.name
      BLAST_QUEUE_URL              = aws_sqs_queue.blast.url
      CHUNK_SIZE                   = tostring(var.chunk_size)
      WORKER_CONCURRENCY           = tostring(var.worker_concurrency)
      LEDGER_TTL_DAYS              = tostring(var.ledger_ttl_days)
      POWERTOOLS_SERVICE_NAME      = var.service_name
      POWERTOOLS_METRICS_NAMESPACE = var.metrics_namespace
      LOG_LEVEL                    = var.log_level
    },
    var.max_send_rate == null ? {} : { MAX_SEND_RATE = tostring(var.max_send_rate) },
    var.send_concurrency == null ? {} : { SEND_CONCURRENCY = tostring(var.send_concurrency) },
  )
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:Asynchronous failures go to an on-failure destination (aws_lambda_function_event_invoke_config below), which records the request and the error; a second DLQ would duplicate it.
  #checkov:skip=CKV_AWS_117:The function reaches only AWS APIs and SES; a VPC would add NAT or six interface endpoints and protect nothing.
  #checkov:skip=CKV_AWS_173:The environment holds resource names and numbers only, never a secret (those live in Secrets Manager under the stack's CMK); Lambda encrypts it at rest with its own key.
  #checkov:skip=CKV_AWS_272:The zip is built and deployed by the same `make deploy`; there is no signing profile to verify against.
  function_name = var.name
  description   = "Email blasts through SES v2 (send, preflight, status, doctor; fan-out worker)"
  role          = aws_iam_role.lambda.arn
  handler       = "sender.handler.lambda_handler"
  runtime       = var.runtime
  architectures = [var.architecture]

  filename         = local.package_path
  source_code_hash = local.package_exists ? filebase64sha256(local.package_path) : null

  timeout                        = var.function_timeout
  memory_size                    = var.memory_size
  reserved_concurrent_executions = var.reserved_concurrency

  environment {
    variables = local.function_environment
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.lambda.name
  }

  tracing_config {
    mode = var.tracing_mode
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = local.package_exists
      error_message = "No Lambda package at ${local.package_path}: run `make package` first (or set package_path)."
    }

    precondition {
      condition = local.package_manifest == null ? true : (
        local.package_manifest.runtime == var.runtime && local.package_manifest.architecture == var.architecture
      )
      error_message = "The package was built for another runtime or architecture than var.runtime/var.architecture: rebuild with `make package RUNTIME=${var.runtime} ARCH=${var.architecture}`."
    }

    precondition {
      condition     = var.reserved_concurrency == -1 || var.reserved_concurrency > var.worker_concurrency
      error_message = "reserved_concurrency must exceed worker_concurrency (workers plus at least one planner or direct invocation), or be -1."
    }
  }

  depends_on = [
    aws_cloudwatch_log_group.lambda,
    aws_iam_role_policy.logs,
  ]
}

# Asynchronous invocations: no blind re-run of a failed blast (see var.async_retry_attempts); the failure,
# with its request, goes to a queue an operator reads.
resource "aws_lambda_function_event_invoke_config" "this" {
  function_name                = aws_lambda_function.this.function_name
  maximum_retry_attempts       = var.async_retry_attempts
  maximum_event_age_in_seconds = var.async_max_event_age

  destination_config {
    on_failure {
      destination = aws_sqs_queue.failed_invocations.arn
    }
  }

  depends_on = [aws_iam_role_policy.queue]
}
