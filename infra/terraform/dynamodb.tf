# The delivery ledger (CONTRACT DELIVERY_TABLE): one item per (blast_id, lower-cased email), also the
# idempotency claim that keeps a recipient from being sent twice, and the fan-out plan of a blast.

resource "aws_dynamodb_table" "ledger" {
  name                        = local.ledger_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "blast_id"
  range_key                   = "email"
  deletion_protection_enabled = var.ledger_deletion_protection

  attribute {
    name = "blast_id"
    type = "S"
  }

  attribute {
    name = "email"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }

  tags = local.tags
}
