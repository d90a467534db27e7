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
  workspace "ping" {
    dataset_group "inputs" {
      sink "crm_db" "customers" {}
      sink "pong_db" "ids" {}
    }
    transformer "make_ping" {
      sql = <<-SQL
        SELECT id FROM {{ input "inputs" "crm_db" "customers" }}
        UNION SELECT id FROM {{ input "inputs" "pong_db" "ids" }}
      SQL
      output "ping_db" {
        dataset "ids" {
          table {
            columns = {
              id = { type = "integer", nullable = false, primary_key = true }
            }
          }
        }
      }
    }
  }
  workspace "pong" {
    dataset_group "inputs" {
      sink "ping_db" "ids" {}
    }
    transformer "make_pong" {
      sql = <<-SQL
        SELECT id FROM {{ input "inputs" "ping_db" "ids" }}
      SQL
      output "pong_db" {
        dataset "ids" {
          table {
            columns = {
              id = { type = "integer", nullable = false, primary_key = true }
            }
          }
        }
      }
    }
  }
}
