# The Insights team (zone Analytics). Owner: acme/insights@main.
#
# Consumers only, plus one transformer that derives customer segments. All of it runs on the on-premises
# data platforms, as the Analytics zone requires.

team "Analytics" "insights" {
  documentation { text = "Sales reporting and customer analytics." }

  # The sales dashboards. Personal data (PC3) is kept out by the workspace's own verifier.
  workspace "sales_reporting" {
    priority          = "CRITICAL"
    production_status = "PRODUCTION"

    classification_verifier {
      not_allowed = ["PC3"]
    }

    dataset_group "live_sales" {
      requirements = { milestoning = "LIVE_ONLY", latency = "MINUTES" }
      sink "orders_db" "orders" {}
      sink "orders_db" "order_lines" {}
      sink "product_catalog" "products" {}
      sink "customer_db" "addresses" {}
    }

    dataset_group "sales_history" {
      requirements = { milestoning = "FORENSIC", latency = "DAYS" }
      sink "orders_db" "orders" { deprecations_allowed = false }
      sink "product_catalog" "products" {}
    }
  }

  workspace "customer_360" {
    priority          = "HIGH"
    production_status = "NOT_PRODUCTION"

    dataset_group "customer_live" {
      requirements = { milestoning = "LIVE_ONLY", latency = "SECONDS" }
      sink "customer_db" "customers" {}
      sink "customer_segments_db" "customer_segments" {}
    }

    dataset_group "customer_audit" {
      requirements = { milestoning = "FORENSIC", latency = "HOURS" }
      sink "customer_db" "customers" {}
      sink "customer_db" "addresses" {}
    }
  }

  # A transformer with a trigger: nightly at 02:00.
  workspace "segmentation_job" {
    priority = "MEDIUM"

    dataset_group "segmentation_inputs" {
      sink "customer_db" "customers" {}
      sink "orders_db" "orders" {}
    }

    transformer "customer_segmentation" {
      trigger = { cron = "0 2 * * *" }
      sql     = <<-SQL
        SELECT c.id                                            AS customer_id,
               count(o.order_id)                               AS order_count,
               coalesce(sum(o.total_amount), 0)::decimal(14,2) AS lifetime_value,
               min(o.order_date)                               AS first_order_date,
               max(o.order_date)                               AS last_order_date,
               (CASE
                  WHEN coalesce(sum(o.total_amount), 0) >= 10000 THEN 'gold'
                  WHEN coalesce(sum(o.total_amount), 0) >= 1000  THEN 'silver'
                  ELSE 'bronze'
                END)::varchar(16)                              AS segment
          FROM {{ input "segmentation_inputs" "customer_db" "customers" }} AS c
          LEFT JOIN {{ input "segmentation_inputs" "orders_db" "orders" }} AS o
                 ON o.customer_id = c.id AND o.status <> 'cancelled'
         GROUP BY c.id
      SQL

      output "customer_segments_db" {
        dataset "customer_segments" {
          classifications = ["PC1"]
          documentation { text = "Order history summary and value segment per customer." }
          table {
            columns = {
              customer_id      = { type = "bigint", nullable = false, primary_key = true }
              order_count      = { type = "bigint", nullable = false }
              lifetime_value   = { type = "decimal(14,2)", nullable = false }
              first_order_date = { type = "date", doc = "null when the customer never ordered" }
              last_order_date  = { type = "date" }
              segment          = { type = "varchar(16)", nullable = false }
            }
          }
        }
      }
    }
  }
}
