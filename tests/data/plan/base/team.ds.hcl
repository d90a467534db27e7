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
  workspace "reports" {
    dataset_group "live" {
      requirements = { milestoning = "LIVE_ONLY" }
      sink "crm_db" "customers" {}
    }
  }
  workspace "audit" {
    dataset_group "history" {
      requirements = { milestoning = "FORENSIC" }
      sink "crm_db" "customers" {}
    }
  }
  workspace "churn" {
    dataset_group "live" {
      requirements = { milestoning = "LIVE_ONLY" }
      sink "crm_db" "customers" {}
    }
  }
}
