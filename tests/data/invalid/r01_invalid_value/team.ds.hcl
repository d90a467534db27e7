team "sales" "crm" {
  datastore "crm_db" {
    production_status = "production"
    capture "cdc" {
      credential = "crm_src"
      trigger    = { interval = "1m" }
      source {
        postgres {
          host     = "127.0.0.1"
          port     = 70000
          database = "crm"
        }
      }
    }
    dataset "customers" {
      table {
        columns = {
          id    = { type = "integer", nullable = false, primary_key = true }
          email = { type = "varchar(200)" }
        }
      }
    }
  }
  datastore "clicks" {
    capture "kafak" {
      credential = "kafka_reader"
    }
    dataset "events" {
      table {
        columns = {
          id = { type = "bigint", nullable = false, primary_key = true }
        }
      }
    }
  }
  workspace "reports" {
    priority = "URGENT"
    dataset_group "live" {
      requirements = { milestoning = "LIVE_ONLY", latency = "MINUTE" }
      sink "crm_db" "customers" {}
    }
  }
}
