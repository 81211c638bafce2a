# The function's role: least privilege, one policy document per concern, each scoped to this stack's ARNs.
# tests/test_iam_matches_code.py compares the actions granted here with the AWS calls in sender/*.py, so
# neither side can drift: a new call needs a grant here, and a grant nobody calls fails the test.

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "lambda" {
  name               = var.name
  description        = "Execution role of the ${var.name} function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = local.tags
}

# --- Logs: the Lambda runtime writes to the explicit log group (no logs:CreateLogGroup) ---------------
data "aws_iam_policy_document" "logs" {
  statement {
    sid       = "WriteOwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda.arn}:*"]
  }
}

resource "aws_iam_role_policy" "logs" {
  name   = "logs"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.logs.json
}

# --- The configuration secret ----------------------------------------------------------------------
data "aws_iam_policy_document" "secret" {
  statement {
    sid       = "ReadSenderSecret"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [aws_secretsmanager_secret.this.arn]
  }
}

resource "aws_iam_role_policy" "secret" {
  name   = "secret"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.secret.json
}

# --- The stack's KMS key, only through the services that encrypt with it -----------------------------
# Secrets Manager decrypts the secret; DynamoDB and SQS (SSE-KMS with a customer managed key) need the
# caller to be allowed Decrypt for reads and GenerateDataKey for writes.
data "aws_iam_policy_document" "kms" {
  statement {
    sid       = "UseStackKeyViaItsServices"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "secretsmanager.${var.region}.amazonaws.com",
        "dynamodb.${var.region}.amazonaws.com",
        "sqs.${var.region}.amazonaws.com",
      ]
    }
  }
}

resource "aws_iam_role_policy" "kms" {
  name   = "kms"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.kms.json
}

# --- The delivery ledger -----------------------------------------------------------------------------
data "aws_iam_policy_document" "ledger" {
  statement {
    sid = "DeliveryLedger"
    # Claims and outcomes are conditional UpdateItems; status reads use GetItem and Query.
    actions = [
      "dynamodb:GetItem",
      "dynamodb:UpdateItem",
      "dynamodb:Query",
    ]
    resources = [aws_dynamodb_table.ledger.arn]
  }
}

resource "aws_iam_role_policy" "ledger" {
  name   = "ledger"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.ledger.json
}

# --- Fan-out queue (the planner sends chunks; the event source mapping receives and deletes them with
# this role; ChangeMessageVisibility is not needed: a failed record is reported, not re-timed) and the
# on-failure destination of asynchronous invocations.
data "aws_iam_policy_document" "queue" {
  statement {
    sid = "BlastQueue"
    actions = [
      "sqs:SendMessage",
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
    ]
    resources = [aws_sqs_queue.blast.arn]
  }

  statement {
    sid       = "AsyncOnFailureDestination"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.failed_invocations.arn]
  }
}

resource "aws_iam_role_policy" "queue" {
  name   = "queue"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.queue.json
}

# --- SES ---------------------------------------------------------------------------------------------
# Resource scoping per the Service Authorization Reference ("Actions, resources, and condition keys for
# Amazon Simple Email Service v2"):
#   ses:SendEmail, ses:SendRawEmail  resource types identity (required) and configuration-set; condition
#                                    key ses:FromAddress. In the sandbox SES also authorizes against each
#                                    recipient identity, hence var.ses_sandbox_recipients.
#   ses:GetEmailIdentity             resource type identity.
#   ses:GetAccount, ses:GetSuppressedDestination, ses:ListSuppressedDestinations
#                                    no resource type at all: the reference requires Resource "*". They
#                                    are read-only and account-wide (sending status, quota, suppression).
# The document is always built: with ses_role_arn set it is not attached to this role but published as
# the ses_role_policy_json output for the role in the SES account.
data "aws_iam_policy_document" "ses" {
  statement {
    sid       = "SendAsTheFromIdentityOnly"
    actions   = ["ses:SendEmail", "ses:SendRawEmail"]
    resources = concat(local.ses_identity_arns, local.ses_configuration_set_arns, local.ses_sandbox_recipient_arns)

    condition {
      test     = "StringEqualsIgnoreCase"
      variable = "ses:FromAddress"
      values   = var.ses_from_addresses
    }
  }

  statement {
    sid       = "ReadTheFromIdentity"
    actions   = ["ses:GetEmailIdentity"]
    resources = local.ses_identity_arns
  }

  statement {
    # No resource type for these three (see above): "*" is the only valid Resource.
    sid = "AccountWideReadsWithoutResourceType"
    actions = [
      "ses:GetAccount",
      "ses:GetSuppressedDestination",
      "ses:ListSuppressedDestinations",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "ses" {
  count = local.ses_own_role ? 1 : 0

  name   = "ses"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.ses.json
}

# --- SES in another account: assume the role named in the secret's role_arn ----------------------------
data "aws_iam_policy_document" "assume_ses_role" {
  count = local.ses_own_role ? 0 : 1

  statement {
    sid       = "AssumeSesRole"
    actions   = ["sts:AssumeRole"]
    resources = [var.ses_role_arn]
  }
}

resource "aws_iam_role_policy" "assume_ses_role" {
  count = local.ses_own_role ? 0 : 1

  name   = "assume-ses-role"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.assume_ses_role[0].json
}

# --- Recipient lists in S3 (recipients_uri), only when a bucket is configured -------------------------
data "aws_iam_policy_document" "recipient_lists" {
  count = local.read_recipient_lists ? 1 : 0

  statement {
    sid       = "ReadRecipientLists"
    actions   = ["s3:GetObject"]
    resources = ["arn:${local.partition}:s3:::${var.recipient_list_bucket}/${var.recipient_list_prefix}*"]
  }

  dynamic "statement" {
    for_each = var.recipient_list_kms_key_arn == "" ? [] : [var.recipient_list_kms_key_arn]

    content {
      sid       = "DecryptRecipientLists"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${var.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "recipient_lists" {
  count = local.read_recipient_lists ? 1 : 0

  name   = "recipient-lists"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.recipient_lists[0].json
}

# --- X-Ray, only with tracing_mode = "Active" -----------------------------------------------------------
data "aws_iam_policy_document" "tracing" {
  count = var.tracing_mode == "Active" ? 1 : 0

  statement {
    # xray:PutTraceSegments and xray:PutTelemetryRecords have no resource type: "*" is the only valid Resource.
    sid       = "WriteTraces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "tracing" {
  count = var.tracing_mode == "Active" ? 1 : 0

  name   = "tracing"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.tracing[0].json
}
