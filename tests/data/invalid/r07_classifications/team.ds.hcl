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
      classifications = ["PC2"]
      table {
        columns = {
          id    = { type = "integer", nullable = false, primary_key = true }
          email = { type = "varchar(200)", classifications = ["PC3:email"] }
        }
      }
    }
    dataset "contacts" {
      table {
        columns = {
          id    = { type = "integer", nullable = false, primary_key = true }
          email = { type = "varchar(200)", classifications = ["PC3:"] }
          phone = { type = "varchar(20)", classifications = ["PC 3"] }
        }
      }
    }
    dataset "orders" {
      classifications = ["PUB:orders:all"]
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
