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
  }
  state = { backend = "local", path = ".ds/state.json" }
  data_platform "zero_live" { milestoning = "LIVE_ONLY" }
  data_platform "zero_forensic" {
    milestoning    = "FORENSIC"
    archive_bucket = "archive"
  }
}
