team "sales" "billing" {
  datastore "CRM_DB" {
    capture "sql_snapshot" {
      credential = "billing_src"
      trigger    = { interval = "1h" }
      source {
        postgres {
          host     = "127.0.0.1"
          database = "billing"
        }
      }
    }
    dataset "invoices" {
      table {
        columns = {
          id = { type = "integer", nullable = false, primary_key = true }
        }
      }
    }
  }
  workspace "Reports" {
    dataset_group "live" {
      requirements = { milestoning = "LIVE_ONLY" }
      sink "crm_db" "customers" {}
    }
  }
}
