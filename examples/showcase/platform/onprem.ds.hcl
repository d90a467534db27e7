# The on-premises platform in the New York data centre. It serves everything except Marketing's cloud
# workspaces. Owner: the platform team (acme/data-ecosystem@main).

platform "onprem" {
  locations = ["Acme:USA/NY_1"]

  merge_db {
    host       = "merge-db.ny1.acme.internal"
    port       = 5432
    database   = "datasurface"
    credential = "onprem_merge" # ONPREM_MERGE_USER / ONPREM_MERGE_PASSWORD
  }

  # Needed: customer_db is captured by CDC and ingested here.
  kafka_connect {
    url               = "http://connect.ny1.acme.internal:8083"
    bootstrap_servers = "kafka-1.ny1.acme.internal:9092,kafka-2.ny1.acme.internal:9092"
    credential        = "onprem_connect"
  }

  object_store {
    endpoint   = "https://minio.ny1.acme.internal:9000"
    region     = "us-east-1"
    credential = "onprem_s3"

    bucket "acme-forensic-archive" {
      versioning = true
      lifecycle  = { expire_after_days = 2555 } # seven years
      tags       = { owner = "platform-team", retention = "7y" }
    }
  }

  credentials = { kind = "env" }
  state       = { backend = "postgres" } # a table in the merge database above

  data_platform "acme_live" {
    milestoning             = "LIVE_ONLY"
    staging_batches_to_keep = 5
  }

  data_platform "acme_forensic" {
    milestoning             = "FORENSIC"
    staging_batches_to_keep = -1 # keep every staged batch: auditors replay them
    archive_bucket          = "acme-forensic-archive"
  }
}
