team "sales" "crm" {
  datastore "crm_db" {
    capture "cdc" {
      trigger = { interval = "1m" }
      source {
        postgres {
          host     = "127.0.0.1"
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
  datastore "ledger_db" {
    capture "sql_snapshot" {
      credential = "ledger_src"
      trigger    = { interval = "1h" }
    }
    dataset "entries" {
      table {
        columns = {
          id = { type = "integer", nullable = false, primary_key = true }
        }
      }
    }
  }
  datastore "clicks" {
    capture "kafka" {
      credential        = "kafka_reader"
      topic_for_dataset = { events = "web.clicks" }
      source {
        postgres {
          host     = "127.0.0.1"
          database = "web"
        }
      }
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
    dataset_group "live" {
      requirements = { milestoning = "LIVE_ONLY" }
      sink "crm_db" "customers" {}
    }
  }
}
