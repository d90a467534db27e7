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
      deprecated = true
      table {
        columns = {
          id    = { type = "integer", nullable = false, primary_key = true }
          email = { type = "varchar(200)" }
        }
      }
    }
  }
  datastore "legacy_db" {
    deprecated = true
    capture "sql_snapshot" {
      credential = "legacy_src"
      trigger    = { interval = "1d" }
      source {
        postgres {
          host     = "127.0.0.1"
          database = "legacy"
        }
      }
    }
    dataset "accounts" {
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
      sink "crm_db" "customers" { deprecations_allowed = false }
      sink "legacy_db" "accounts" {}
    }
  }
}
