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
    dataset "orders" {
      table {
        columns = {
          id          = { type = "integer", nullable = false, primary_key = true }
          customer_id = { type = "integer", nullable = false }
          region      = { type = "text" }
        }
        primary_key   = ["idd", "customer_id"]
        partition_key = ["region", "country"]
      }
    }
    dataset "lines" {
      table {
        columns = {
          order_id = { type = "integer", nullable = true, primary_key = true }
          line     = { type = "integer", primary_key = true }
        }
        primary_key = ["order_id", "line", "order_id"]
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
