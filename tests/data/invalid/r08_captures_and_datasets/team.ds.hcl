team "sales" "crm" {
  datastore "crm_db" {
    capture "cdc" {
      credential = "crm_src"
      trigger    = { interval = "1m" }
      source {
        postgres {
          host     = "127.0.0.1"
          database = "crm"
        }
      }
    }
    capture "sql_snapshot" {
      credential = "crm_src"
      trigger    = { interval = "1h" }
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
      trigger    = { interval = "1h" }
      source {
        postgres {
          host     = "127.0.0.1"
          database = "stock"
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
