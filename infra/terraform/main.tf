data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  tags = merge(var.tags, {
    Application = var.name
    ManagedBy   = "terraform"
  })

  # The zip and the manifest `make package` writes beside it ({"runtime": ..., "architecture": ...}).
  package_path     = coalesce(var.package_path, "${path.module}/../../dist/lambda.zip")
  package_exists   = fileexists(local.package_path)
  package_manifest = try(jsondecode(file("${local.package_path}.json")), null)

  secret_name       = coalesce(var.secret_name, "${var.name}/config")
  ledger_table_name = coalesce(var.ledger_table_name, "${var.name}-deliveries")
  log_group_name    = "/aws/lambda/${var.name}"

  # SQS wants the visibility timeout of a Lambda-triggered queue at >= 6x the function timeout, so a chunk
  # still being worked on (or retried by the event source) is not handed to a second worker.
  queue_visibility_timeout = var.function_timeout * 6

  # SES: the region and account that own the identity, and the ARNs a send is authorized against. IAM
  # compares ARNs case-sensitively: identities are used exactly as written in the variables (as verified).
  ses_region     = coalesce(var.ses_region, var.region)
  ses_account_id = coalesce(var.ses_account_id, local.account_id)
  ses_arn_prefix = "arn:${local.partition}:ses:${local.ses_region}:${local.ses_account_id}"
  ses_from_domains = distinct([
    for address in var.ses_from_addresses : split("@", address)[1]
  ])
  ses_identity_names = distinct(concat(
    var.ses_from_addresses,
    local.ses_from_domains,
    var.ses_identities,
  ))
  ses_identity_arns = [for identity in local.ses_identity_names : "${local.ses_arn_prefix}:identity/${identity}"]
  ses_sandbox_recipient_arns = [
    for identity in var.ses_sandbox_recipients : "${local.ses_arn_prefix}:identity/${identity}"
  ]
  ses_configuration_set_arns = var.ses_configuration_set == "" ? [] : [
    "${local.ses_arn_prefix}:configuration-set/${var.ses_configuration_set}"
  ]
  ses_own_role = var.ses_role_arn == ""

  read_recipient_lists = var.recipient_list_bucket != ""
}
