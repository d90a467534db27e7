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
  workspace "enrich" {
    dataset_group "inputs" {
      sink "crm_db" "customers" {}
    }
    transformer "emails" {
      sql = <<-SQL
        SELECT id, lower(email) AS email FROM {{ input "inputs" "crm_db" "customers" }}
      SQL
      output "emails_db" {
        dataset "emails" {
          table {
            columns = {
              id    = { type = "integer", nullable = false, primary_key = true }
              email = { type = "varchar(200)" }
            }
          }
        }
      }
    }
    transformer "ids" {
      sql = <<-SQL
        SELECT id FROM {{ input "inputs" "crm_db" "customers" }}
      SQL
      output "ids_db" {
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
