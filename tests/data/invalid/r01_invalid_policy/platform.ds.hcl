platform "main" {
  locations = ["Acme:USA/NY"]
  merge_db {
    host       = "127.0.0.1"
    port       = 5432
    database   = "ds"
    credential = "merge_rw"
  }
  kafka_connect {
    url               = "http://127.0.0.1:8083"
    bootstrap_servers = "127.0.0.1:9092"
  }
  object_store {
    endpoint   = "http://127.0.0.1:9000"
    credential = "object_store"
    bucket "archive" {
      policy = <<EOT
{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",}]}
EOT
    }
    bucket "reports" {
      policy = "[\"s3:GetObject\"]"
    }
    bucket "public" {
      policy = <<-EOT
        {
          "Version": "2012-10-17",
          "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::public/*"}]
        }
      EOT
    }
  }
  state = { backend = "local", path = ".ds/state.json" }
  data_platform "zero_live" { milestoning = "LIVE_ONLY" }
  data_platform "zero_forensic" {
    milestoning    = "FORENSIC"
    archive_bucket = "archive"
  }
}
