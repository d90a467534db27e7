# The AWS platform used by Marketing. Its data platform `cloud_live` is the second LIVE_ONLY one in the
# ecosystem, so every live group and every transformer group needs an `assignment` (see assignments.ds.hcl).
# Owner: the platform team (acme/data-ecosystem@main).

platform "cloud" {
  locations = ["AWS:us-east-1"]

  merge_db {
    host       = "ds-merge.c8xk2yq1.us-east-1.rds.amazonaws.com"
    port       = 5432
    database   = "datasurface"
    credential = "cloud_merge"
  }

  # Needed: the clickstream Kafka store is ingested here.
  kafka_connect {
    url               = "https://connect.marketing.acme.example"
    bootstrap_servers = "b-1.acme-msk.kafka.us-east-1.amazonaws.com:9094"
    credential        = "cloud_connect"
  }

  object_store {
    endpoint   = "https://s3.us-east-1.amazonaws.com"
    region     = "us-east-1"
    credential = "cloud_s3"

    bucket "acme-ds-cloud-state" {
      versioning = true # every state version is kept
      tags       = { owner = "platform-team", purpose = "ds-state" }
    }

    bucket "acme-ds-cloud-archive" {
      versioning = false
      lifecycle  = { expire_after_days = 90 }
    }
  }

  # Secrets are files mounted by the deployment, one per credential name.
  credentials = { kind = "directory", path = "/etc/ds/credentials" }

  state = {
    backend = "s3"
    bucket  = "acme-ds-cloud-state"
    key     = "ds/cloud/state.json"
  }

  data_platform "cloud_live" {
    milestoning             = "LIVE_ONLY"
    staging_batches_to_keep = 10
    archive_bucket          = "acme-ds-cloud-archive"
  }
}
