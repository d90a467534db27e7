platform "cloud" {
  locations = ["Acme:USA/NY"]
  merge_db {
    host       = "10.0.0.5"
    port       = 5432
    database   = "ds"
    credential = "cloud_rw"
  }
  kafka_connect {
    url               = "http://10.0.0.6:8083"
    bootstrap_servers = "10.0.0.6:9092"
  }
  data_platform "cloud_live" { milestoning = "LIVE_ONLY" }
}

assignment "reports" "live" { data_platform = "zero_live" }
assignment "reports" "recent" { data_platform = "cloud_live" }
