output "function_name" {
  description = "Name of the sender function (`blast invoke EVENT.json --function <this>`)."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the sender function."
  value       = aws_lambda_function.this.arn
}

output "role_arn" {
  description = "ARN of the function's execution role."
  value       = aws_iam_role.lambda.arn
}

output "secret_arn" {
  description = "ARN of the configuration secret (set its value with `aws secretsmanager put-secret-value`)."
  value       = aws_secretsmanager_secret.this.arn
}

output "secret_name" {
  description = "Name of the configuration secret."
  value       = aws_secretsmanager_secret.this.name
}

output "ledger_table_name" {
  description = "DynamoDB delivery ledger (DELIVERY_TABLE)."
  value       = aws_dynamodb_table.ledger.name
}

output "queue_url" {
  description = "Fan-out queue (BLAST_QUEUE_URL)."
  value       = aws_sqs_queue.blast.url
}

output "dlq_url" {
  description = "Dead-letter queue of chunks that kept failing."
  value       = aws_sqs_queue.blast_dlq.url
}

output "failed_invocations_queue_url" {
  description = "On-failure destination of asynchronous invocations."
  value       = aws_sqs_queue.failed_invocations.url
}

output "kms_key_arn" {
  description = "The stack's customer managed key."
  value       = aws_kms_key.this.arn
}

output "log_group_name" {
  description = "The function's log group."
  value       = aws_cloudwatch_log_group.lambda.name
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify."
  value       = local.alarm_actions[0]
}

output "schedule_names" {
  description = "Names of the scheduled blasts."
  value       = [for schedule in aws_scheduler_schedule.blast : schedule.name]
}

output "ses_role_policy_json" {
  description = "The SES permissions the sender needs. With ses_role_arn set, attach this to that role (in the SES account); otherwise it is already on the function's role."
  value       = data.aws_iam_policy_document.ses.json
}
