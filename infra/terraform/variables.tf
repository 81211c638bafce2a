# ---------------------------------------------------------------------------------------------------------
# Naming, region, tags
# ---------------------------------------------------------------------------------------------------------
variable "name" {
  description = "Name of the function and prefix of every resource this configuration creates."
  type        = string
  default     = "jada-blast-sender"

  validation {
    condition     = can(regex("^[A-Za-z0-9-_]{1,48}$", var.name))
    error_message = "name must be 1-48 letters, digits, '-' or '_' (it prefixes queue, table and role names)."
  }
}

variable "region" {
  description = "AWS region of the function, its queue, table, secret and alarms."
  type        = string
  default     = "us-west-2"
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------------------------
# The function and its package
# ---------------------------------------------------------------------------------------------------------
variable "runtime" {
  description = "Lambda Python runtime. Must be the one `make package RUNTIME=...` built the zip for."
  type        = string
  default     = "python3.12"

  validation {
    condition     = contains(["python3.12", "python3.13"], var.runtime)
    error_message = "runtime must be python3.12 or python3.13."
  }
}

variable "architecture" {
  description = "Lambda instruction set: arm64 (cheaper per GB-second) or x86_64. Must match `make package ARCH=...`."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

variable "package_path" {
  description = "Path of the Lambda zip built by `make package`; null means dist/lambda.zip at the repository root."
  type        = string
  default     = null
}

variable "function_timeout" {
  description = "Function timeout in seconds. A blast that cannot finish in time is fanned out or returns `partial`."
  type        = number
  default     = 900

  validation {
    condition     = var.function_timeout >= 30 && var.function_timeout <= 900
    error_message = "function_timeout must be between 30 and 900 seconds."
  }
}

variable "memory_size" {
  description = "Function memory in MB (CPU share grows with it)."
  type        = number
  default     = 512

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be between 128 and 10240 MB."
  }
}

variable "reserved_concurrency" {
  description = <<-EOT
    Reserved concurrent executions of the function: a hard cap on how many copies can send at once, so a
    burst of invocations cannot multiply the send rate. Must exceed worker_concurrency (the workers plus at
    least one planner or direct invocation). -1 removes the reservation (needed in new accounts whose
    concurrency limit is too low to reserve any).
  EOT
  type        = number
  default     = 4

  validation {
    condition     = var.reserved_concurrency == -1 || var.reserved_concurrency >= 3
    error_message = "reserved_concurrency must be -1 (no reservation) or at least 3 (two workers and a planner)."
  }
}

variable "log_retention_days" {
  description = "Days to keep the function's logs (they hold one line per recipient, so addresses: keep them no longer than needed)."
  type        = number
  default     = 90

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ...)."
  }
}

variable "log_level" {
  description = "LOG_LEVEL of the function's powertools Logger."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "service_name" {
  description = "POWERTOOLS_SERVICE_NAME: the `service` dimension of the sender's metrics and a field of every log line."
  type        = string
  default     = "jada-blast-sender"
}

variable "metrics_namespace" {
  description = "POWERTOOLS_METRICS_NAMESPACE: CloudWatch namespace of the sender's own metrics (RecordsFailed, ...)."
  type        = string
  default     = "JadaBlastSender"
}

variable "tracing_mode" {
  description = "X-Ray tracing: PassThrough (no traces of our own, no extra permissions) or Active (adds xray:PutTraceSegments/PutTelemetryRecords)."
  type        = string
  default     = "PassThrough"

  validation {
    condition     = contains(["PassThrough", "Active"], var.tracing_mode)
    error_message = "tracing_mode must be PassThrough or Active."
  }
}

variable "async_retry_attempts" {
  description = <<-EOT
    How often Lambda retries a failed asynchronous invocation (a scheduled blast, `blast invoke --async`).
    0 by default: a failed blast goes to the failed-invocations queue and an operator decides; it is not
    re-run blindly. A retry is safe (the ledger sends nobody twice per blast_id) but rarely what you want
    after a refusal.
  EOT
  type        = number
  default     = 0

  validation {
    condition     = var.async_retry_attempts >= 0 && var.async_retry_attempts <= 2
    error_message = "async_retry_attempts must be 0, 1 or 2."
  }
}

variable "async_max_event_age" {
  description = "Seconds an asynchronous invocation may wait (throttled) before it is sent to the failed-invocations queue."
  type        = number
  default     = 3600

  validation {
    condition     = var.async_max_event_age >= 60 && var.async_max_event_age <= 21600
    error_message = "async_max_event_age must be between 60 and 21600 seconds."
  }
}

variable "ledger_ttl_days" {
  description = "LEDGER_TTL_DAYS: days a delivery record is kept before DynamoDB's TTL removes it (attribute expires_at)."
  type        = number
  default     = 180
}

# ---------------------------------------------------------------------------------------------------------
# Sending rate and fan-out
# ---------------------------------------------------------------------------------------------------------
variable "chunk_size" {
  description = "CHUNK_SIZE: recipients per fan-out chunk (one SQS message, one worker invocation)."
  type        = number
  default     = 500

  validation {
    condition     = var.chunk_size >= 1 && var.chunk_size <= 10000
    error_message = "chunk_size must be between 1 and 10000."
  }
}

variable "worker_concurrency" {
  description = <<-EOT
    Maximum concurrent workers on the blast queue: the event source mapping's maximum_concurrency and the
    function's WORKER_CONCURRENCY, so each worker sends at 1/worker_concurrency of the account's rate and
    the fleet together stays under SES MaxSendRate. SQS event sources allow 2 to 1000.
  EOT
  type        = number
  default     = 2

  validation {
    condition     = var.worker_concurrency >= 2 && var.worker_concurrency <= 1000
    error_message = "worker_concurrency must be between 2 and 1000 (the limits of an SQS event source's maximum_concurrency)."
  }
}

variable "max_send_rate" {
  description = "MAX_SEND_RATE: optional cap in messages per second below the account's SES MaxSendRate; null = the account's rate."
  type        = number
  default     = null
}

variable "send_concurrency" {
  description = "SEND_CONCURRENCY: optional cap on SendEmail calls in flight per invocation; null = the code's default."
  type        = number
  default     = null
}

variable "queue_batch_size" {
  description = "Chunks handed to one worker invocation. Keep 1: each chunk is sized to fill one invocation, so a later chunk in a batch may find no time left (it is then redelivered, costing a receive)."
  type        = number
  default     = 1

  validation {
    condition     = var.queue_batch_size >= 1 && var.queue_batch_size <= 10
    error_message = "queue_batch_size must be between 1 and 10."
  }
}

variable "queue_max_receive_count" {
  description = "Receives of a chunk before SQS moves it to the dead-letter queue."
  type        = number
  default     = 3
}

variable "queue_message_retention_seconds" {
  description = "How long an unprocessed chunk stays on the blast queue (the DLQ keeps messages 14 days)."
  type        = number
  default     = 345600
}

# ---------------------------------------------------------------------------------------------------------
# SES: identity, region, account
# ---------------------------------------------------------------------------------------------------------
variable "ses_from_addresses" {
  description = <<-EOT
    The From address(es) the function may send as (the secret's from_address, without display name). They
    are the value of the ses:FromAddress condition, and they and their domains are the identity ARNs the
    send permission is scoped to.
  EOT
  type        = list(string)

  validation {
    condition     = length(var.ses_from_addresses) > 0 && alltrue([for a in var.ses_from_addresses : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", a))])
    error_message = "ses_from_addresses must hold at least one address like admin@example.com."
  }
}

variable "ses_identities" {
  description = "Extra SES identities (domains or addresses) the function may read and send through, besides the From addresses and their domains."
  type        = list(string)
  default     = []
}

variable "ses_sandbox_recipients" {
  description = "While the SES account is in the sandbox, SES also authorizes sends against each verified recipient identity: list them here. Empty once production access is granted."
  type        = list(string)
  default     = []
}

variable "ses_configuration_set" {
  description = "The secret's configuration_set (the function may send through it); empty when none is used."
  type        = string
  default     = ""
}

variable "ses_region" {
  description = "Region whose SES sends (where the identity is verified); must equal the secret's ses_region. Empty = var.region."
  type        = string
  default     = ""
}

variable "ses_account_id" {
  description = "Account that owns the SES identity (the role_arn's account when SES lives elsewhere). Empty = this account."
  type        = string
  default     = ""

  validation {
    condition     = var.ses_account_id == "" || can(regex("^[0-9]{12}$", var.ses_account_id))
    error_message = "ses_account_id must be empty or a 12-digit account id."
  }
}

variable "ses_role_arn" {
  description = <<-EOT
    The secret's role_arn: a role (usually in the SES account) that the function assumes for every SES call.
    When set, the function's own role gets only sts:AssumeRole on it and no SES permission; attach the
    `ses_role_policy_json` output to that role instead. Empty = the function's own role calls SES.
  EOT
  type        = string
  default     = ""

  validation {
    condition     = var.ses_role_arn == "" || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", var.ses_role_arn))
    error_message = "ses_role_arn must be empty or an IAM role ARN."
  }
}

# ---------------------------------------------------------------------------------------------------------
# Recipient lists in S3 (optional)
# ---------------------------------------------------------------------------------------------------------
variable "recipient_list_bucket" {
  description = "S3 bucket that holds recipient lists (recipients_uri); empty = no S3 access at all."
  type        = string
  default     = ""
}

variable "recipient_list_prefix" {
  description = "Key prefix under recipient_list_bucket the function may read, e.g. \"lists/\"; empty = the whole bucket."
  type        = string
  default     = "lists/"
}

variable "recipient_list_kms_key_arn" {
  description = "KMS key of the list bucket when it uses SSE-KMS with a customer managed key; empty otherwise."
  type        = string
  default     = ""
}

# ---------------------------------------------------------------------------------------------------------
# Secret, ledger table, KMS
# ---------------------------------------------------------------------------------------------------------
variable "secret_name" {
  description = "Name of the Secrets Manager secret holding the sender's configuration; null = \"<name>/config\"."
  type        = string
  default     = null
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can still be restored (0 deletes at once; 7-30 otherwise)."
  type        = number
  default     = 7

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 or between 7 and 30."
  }
}

variable "ledger_table_name" {
  description = "Name of the DynamoDB delivery ledger; null = \"<name>-deliveries\"."
  type        = string
  default     = null
}

variable "ledger_deletion_protection" {
  description = "Refuse to delete the ledger table (the record of who was sent what) until this is set to false."
  type        = bool
  default     = true
}

variable "kms_deletion_window_days" {
  description = "Waiting period in days before the stack's KMS key is deleted after a destroy."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

# ---------------------------------------------------------------------------------------------------------
# Scheduled blasts
# ---------------------------------------------------------------------------------------------------------
variable "schedules" {
  description = <<-EOT
    Scheduled blasts, by schedule name. schedule_expression is an EventBridge Scheduler expression
    (`at(2027-03-01T09:00:00)`, `cron(0 9 ? * MON *)`, `rate(7 days)`), timezone an IANA zone
    ("America/Los_Angeles"), event the invoke payload as a JSON string, exactly CONTRACT's event (add
    "dry_run": true to rehearse). A JSON string rather than an HCL object on purpose: Terraform would
    silently drop a key that an object type does not list (a misspelt "dry_run" would become a real send),
    and would refuse two schedules whose events have different keys. In a .tfvars file write it as a
    heredoc; from a .tf file jsonencode({...}) works.
  EOT
  type = map(object({
    schedule_expression = string
    timezone            = optional(string, "UTC")
    event               = string
    enabled             = optional(bool, true)
    description         = optional(string, "")
  }))
  default = {}

  validation {
    condition     = alltrue([for name, s in var.schedules : can(jsondecode(s.event).blast_id)])
    error_message = "Each schedule's event must be a JSON object with at least a blast_id (CONTRACT \"The event\")."
  }

  validation {
    condition     = alltrue([for name, s in var.schedules : can(regex("^(at|cron|rate)\\(.+\\)$", s.schedule_expression))])
    error_message = "Each schedule_expression must be at(...), cron(...) or rate(...)."
  }

  validation {
    condition     = alltrue([for name, s in var.schedules : can(regex("^[0-9A-Za-z_.-]{1,64}$", name))])
    error_message = "Schedule names must be 1-64 letters, digits, '.', '-' or '_'."
  }
}

variable "schedule_retry_attempts" {
  description = "Times EventBridge Scheduler retries delivering a schedule's invocation that Lambda did not accept (throttling, service errors)."
  type        = number
  default     = 2

  validation {
    condition     = var.schedule_retry_attempts >= 0 && var.schedule_retry_attempts <= 185
    error_message = "schedule_retry_attempts must be between 0 and 185."
  }
}

# ---------------------------------------------------------------------------------------------------------
# Alarms
# ---------------------------------------------------------------------------------------------------------
variable "alarm_topic_arn" {
  description = "Existing SNS topic for alarm notifications; empty = create one (encrypted with the stack's key)."
  type        = string
  default     = ""
}

variable "alarm_email" {
  description = "Address subscribed to the created alarm topic (the subscription must be confirmed from the email); empty = none."
  type        = string
  default     = ""
}

variable "alarm_period_seconds" {
  description = "Evaluation period of every alarm."
  type        = number
  default     = 300
}

variable "failed_records_threshold" {
  description = "RecordsFailed (the sender's own metric) per period at or above which the failed-records alarm fires."
  type        = number
  default     = 1
}
