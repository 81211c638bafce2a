# Fan-out (issue 5): the planner enqueues one message per chunk; the same function, triggered by this
# queue, works the chunks with at most worker_concurrency copies at once.

resource "aws_sqs_queue" "blast" {
  name                       = "${var.name}-chunks"
  visibility_timeout_seconds = local.queue_visibility_timeout
  message_retention_seconds  = var.queue_message_retention_seconds
  receive_wait_time_seconds  = 20
  kms_master_key_id          = aws_kms_key.this.arn

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.blast_dlq.arn
    maxReceiveCount     = var.queue_max_receive_count
  })

  tags = local.tags
}

# A chunk that keeps failing lands here after queue_max_receive_count receives (alarmed in alarms.tf).
# Redriving it back to the blast queue is safe: the ledger sends nobody twice per blast_id.
resource "aws_sqs_queue" "blast_dlq" {
  name                      = "${var.name}-chunks-dlq"
  message_retention_seconds = 1209600
  kms_master_key_id         = aws_kms_key.this.arn
  tags                      = local.tags
}

resource "aws_sqs_queue_redrive_allow_policy" "blast_dlq" {
  queue_url = aws_sqs_queue.blast_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.blast.arn]
  })
}

# Asynchronous invocations (schedules, `blast invoke --async`) that failed or expired: Lambda's on-failure
# destination writes the request and the response here. Kept apart from the chunk DLQ so that a redrive of
# that DLQ never feeds invocation records to the workers.
resource "aws_sqs_queue" "failed_invocations" {
  name                      = "${var.name}-failed-invocations"
  message_retention_seconds = 1209600
  kms_master_key_id         = aws_kms_key.this.arn
  tags                      = local.tags
}

resource "aws_lambda_event_source_mapping" "blast" {
  event_source_arn        = aws_sqs_queue.blast.arn
  function_name           = aws_lambda_function.this.arn
  batch_size              = var.queue_batch_size
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.worker_concurrency
  }

  depends_on = [aws_iam_role_policy.queue, aws_iam_role_policy.kms]
}
