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
    transformer "enrich_customers" {
      sql = <<-SQL
        SELECT c.id, o.total
        FROM {{ input "input" "crm_db" "customers" }} AS c
        JOIN {{ input "inputs" "crm_db" "orders" }} AS o ON o.customer_id = c.id
        WHERE c.id NOT IN (SELECT id FROM {{ customers }})
      SQL
      output "enriched_db" {
        dataset "customer_totals" {
          table {
            columns = {
              id    = { type = "integer", nullable = false, primary_key = true }
              total = { type = "decimal(12,2)" }
            }
          }
        }
      }
    }
  }
}
