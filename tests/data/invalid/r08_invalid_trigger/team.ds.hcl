team "sales" "crm" {
  datastore "crm_db" {
    capture "cdc" {
      credential = "crm_src"
      trigger    = { cron = "*/5 * * *" }
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
      trigger    = { interval = "0s" }
      source {
        postgres {
          host     = "127.0.0.1"
          database = "ledger"
        }
      }
    }
    dataset "entries" {
      table {
        columns = {
          id = { type = "integer", nullable = false, primary_key = true }
        }
      }
    }
  }
  datastore "stock_db" {
    capture "sql_snapshot" {
      credential = "stock_src"
      trigger    = { interval = "1h", cron = "0 * * * *" }
      source {
        postgres {
          host     = "127.0.0.1"
          database = "stock"
        }
      }
    }
    dataset "items" {
      table {
        columns = {
          id = { type = "integer", nullable = false, primary_key = true }
        }
      }
    }
  }
  datastore "events_db" {
    capture "sql_snapshot" {
      credential = "events_src"
      trigger    = { external = false }
      source {
        postgres {
          host     = "127.0.0.1"
          database = "events"
        }
      }
    }
    dataset "events" {
      table {
        columns = {
          id = { type = "integer", nullable = false, primary_key = true }
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
