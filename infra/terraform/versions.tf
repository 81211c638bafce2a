terraform {
  # optional() attribute defaults and lifecycle preconditions need 1.3; 1.5 is the oldest tested here.
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.50 has every argument used here (logging_config, scaling_config, scheduler retry policy);
      # 6.x is accepted too: nothing here uses an argument that 6.0 removed.
      version = ">= 5.50, < 7.0"
    }
  }
}

provider "aws" {
  region = var.region
}
