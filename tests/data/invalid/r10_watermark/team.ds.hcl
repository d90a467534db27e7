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
  datastore "orders_db" {
    capture "sql_watermark" {
      credential = "orders_src"
      trigger    = { interval = "5m" }
      watermark  = { column = "updated_at" }
      source {
        postgres {
          host     = "127.0.0.1"
          database = "orders"
        }
      }
    }
    dataset "orders" {
      table {
        columns = {
          id         = { type = "integer", nullable = false, primary_key = true }
          updated_at = { type = "text" }
        }
      }
    }
    dataset "lines" {
      table {
        columns = {
          id       = { type = "integer", nullable = false, primary_key = true }
          modified = { type = "timestamp" }
        }
      }
    }
  }
  datastore "stock_db" {
    capture "sql_watermark" {
      credential = "stock_src"
      trigger    = { interval = "5m" }
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
  datastore "prices_db" {
    capture "sql_snapshot" {
      credential = "prices_src"
      trigger    = { interval = "1h" }
      watermark  = { column = "id" }
      source {
        postgres {
          host     = "127.0.0.1"
          database = "prices"
        }
      }
    }
    dataset "prices" {
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
