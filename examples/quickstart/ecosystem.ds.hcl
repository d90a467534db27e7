# The ecosystem and the platform that runs it.
#
# Owner: the platform team (the ecosystem's `owning_repo`). It alone may change this file: the ecosystem,
# its vendors and locations, the set of governance zones, the `platform` blocks and any `assignment`s.

ecosystem "Demo" {
  owning_repo = { repo = "acme/data-ecosystem", branch = "main" }

  documentation { text = "The quickstart ecosystem: one zone, one team, one platform on this machine." }

  # Where things can run. Platforms and stores name a place as "Vendor:Location/Sub".
  vendor "Local" {
    cloud = "PRIVATE"
    location "Laptop" {}
  }

  # Governance zones are declared here and defined in their own file by the zone's owners.
  zone_declaration "retail" {
    owning_repo = { repo = "acme/retail-governance", branch = "main" }
  }
}

# The platform: the real services `ds` drives. Endpoints live here; secrets never do. Each `credential`
# is a name that `ds` resolves from the environment when it connects: `merge_rw` reads MERGE_RW_USER and
# MERGE_RW_PASSWORD.
platform "local" {
  locations = ["Local:Laptop"]

  # The Postgres database where data lands, is merged and is served to workspaces as views.
  merge_db {
    host       = "127.0.0.1"
    port       = 55432
    database   = "datasurface"
    credential = "merge_rw"
  }

  # Kafka Connect with Debezium: needed because `customer_db` is captured by CDC.
  kafka_connect {
    url               = "http://127.0.0.1:8083"
    bootstrap_servers = "127.0.0.1:9092"
  }

  # An S3-compatible object store (MinIO) for archived batches.
  object_store {
    endpoint   = "http://127.0.0.1:9000"
    region     = "us-east-1"
    credential = "object_store"

    bucket "ds-archive" {
      versioning = true
    }
  }

  credentials = { kind = "env" }
  state       = { backend = "local", path = ".ds/state.json" }

  # Data platforms are the pipelines. Each gets a schema of its own name in the merge database.
  # A dataset group is served by the one whose milestoning it asks for.
  data_platform "zero_live" {
    milestoning             = "LIVE_ONLY" # keeps only the current version of each row (SCD1)
    staging_batches_to_keep = 5
  }

  data_platform "zero_forensic" {
    milestoning             = "FORENSIC" # keeps every version of each row, with its validity (SCD2)
    staging_batches_to_keep = 5
    archive_bucket          = "ds-archive"
  }
}
