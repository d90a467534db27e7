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
    dataset "customers" {
      table {
        columns = {
          id    = { type = "integer", nullable = false, primary_key = true }
          email = { type = "varchar(200)" }
        }
      }
    }
  }
  datastore "reference_db" {
    capture "sql_snapshot" {
      credential = "reference_src"
      trigger    = { cron = "0 3 * * *" }
      source {
        postgres {
          host     = "127.0.0.1"
          database = "reference"
        }
      }
    }
    dataset "countries" {
      table {
        columns = {
          code = { type = "char(2)" }
          name = { type = "varchar(100)" }
        }
      }
    }
  }
  workspace "reports" {
    dataset_group "live" {
      requirements = { milestoning = "LIVE_ONLY" }
      sink "crm_db" "customers" {}
      sink "reference_db" "countries" {}
    }
  }
}
