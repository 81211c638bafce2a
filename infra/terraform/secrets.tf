# The sender's configuration (CONTRACT "The secret"). Terraform creates the secret and its key only: no
# aws_secretsmanager_secret_version, so no value ever enters the plan or the state. The value is set out of
# band (README "Deploy with Terraform": put-secret-value from a file, then delete the file).

resource "aws_secretsmanager_secret" "this" {
  #checkov:skip=CKV2_AWS_57:Holds the From identity and the SES SMTP credentials, which are rotated by an operator (`blast smtp-password` derives the new password); a rotation Lambda for SES SMTP keys is out of scope.
  name                    = local.secret_name
  description             = "${var.name}: sender configuration (from_address, reply_to, configuration_set, ses_region, role_arn, SMTP credentials). Value set outside Terraform."
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = local.tags
}
