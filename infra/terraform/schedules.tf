# Scheduled blasts: one EventBridge Scheduler schedule per entry of var.schedules, invoking the function
# (asynchronously) with the entry's event through a role that may invoke this function and nothing else.

locals {
  create_schedules = length(var.schedules) > 0
}

resource "aws_scheduler_schedule_group" "this" {
  count = local.create_schedules ? 1 : 0

  name = var.name
  tags = local.tags
}

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "scheduler_invoke" {
  statement {
    sid       = "InvokeTheSenderOnly"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.this.arn, "${aws_lambda_function.this.arn}:*"]
  }
}

resource "aws_iam_role" "scheduler" {
  count = local.create_schedules ? 1 : 0

  name               = "${var.name}-scheduler"
  description        = "Lets EventBridge Scheduler invoke ${var.name} and nothing else"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "scheduler_invoke" {
  count = local.create_schedules ? 1 : 0

  name   = "invoke-sender"
  role   = aws_iam_role.scheduler[0].id
  policy = data.aws_iam_policy_document.scheduler_invoke.json
}

resource "aws_scheduler_schedule" "blast" {
  #checkov:skip=CKV_AWS_297:A schedule holds a blast event (template name, list URI, globals), no secret; a CMK would also need kms:Decrypt on the scheduler role, which may only invoke the function.
  for_each = var.schedules

  name                         = each.key
  group_name                   = aws_scheduler_schedule_group.this[0].name
  description                  = each.value.description == "" ? null : each.value.description
  schedule_expression          = each.value.schedule_expression
  schedule_expression_timezone = each.value.timezone
  state                        = each.value.enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.this.arn
    role_arn = aws_iam_role.scheduler[0].arn
    # Re-encoded so the payload is canonical JSON whatever the heredoc's layout; keys pass through as given.
    input = jsonencode(jsondecode(each.value.event))

    # A redelivered invocation is harmless (the ledger sends nobody twice per blast_id); what Scheduler
    # still could not deliver is counted in InvocationDroppedCount (alarmed in alarms.tf).
    retry_policy {
      maximum_retry_attempts       = var.schedule_retry_attempts
      maximum_event_age_in_seconds = 3600
    }
  }

  depends_on = [aws_iam_role_policy.scheduler_invoke]
}
