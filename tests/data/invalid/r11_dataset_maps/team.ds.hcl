team "sales" "crm" {
  datastore "crm_db" {
    capture "cdc" {
      credential        = "crm_src"
      trigger           = { interval = "1m" }
      table_for_dataset = { customer = "customer_table" }
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
  datastore "clicks" {
    capture "kafka" {
      credential        = "kafka_reader"
      topic_for_dataset = { events = "web.clicks", views = "web.views" }
    }
    dataset "events" {
      table {
        columns = {
          id = { type = "bigint", nullable = false, primary_key = true }
        }
      }
    }
  }
  datastore "orders_db" {
    capture "sql_snapshot" {
      credential        = "orders_src"
      trigger           = { interval = "1h" }
      topic_for_dataset = { orders = "shop.orders" }
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
          id = { type = "integer", nullable = false, primary_key = true }
        }
      }
    }
  }
  datastore "views" {
    capture "kafka" {
      credential        = "kafka_reader"
      table_for_dataset = { pages = "page_views" }
    }
    dataset "pages" {
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
