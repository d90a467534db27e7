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
    bucket "archive" {}
    bucket "state" {}
  }
  state = { backend = "s3", bucket = "state" }
  data_platform "zero_live" { milestoning = "LIVE_ONLY" }
  data_platform "zero_forensic" {
    milestoning    = "FORENSIC"
    archive_bucket = "archive"
  }
}

platform "backup" {
  merge_db {
    host       = "127.0.0.1"
    port       = 5432
    database   = "ds"
    credential = "merge_rw"
  }
  state = { backend = "local", bucket = "state" }
}

platform "legacy" {
  merge_db {
    host       = "127.0.0.1"
    port       = 5432
    database   = "ds"
    credential = "merge_rw"
  }
  state = { backend = "postgres", path = ".ds/state.json" }
}

platform "spare" {
  merge_db {
    host       = "127.0.0.1"
    port       = 5432
    database   = "ds"
    credential = "merge_rw"
  }
  state = { path = ".ds/state.json" }
}
