team "sales" "billing" {
  workspace "billing_enrich" {
    dataset_group "inputs" {
      sink "crm_db" "customers" {}
    }
    transformer "overwrite_crm" {
      sql = <<-SQL
        SELECT id, email FROM {{ input "inputs" "crm_db" "customers" }}
      SQL
      output "crm_db" {
        dataset "customers" {
          table {
            columns = {
              id    = { type = "integer", nullable = false, primary_key = true }
              email = { type = "varchar(200)" }
            }
          }
        }
      }
    }
  }
}
