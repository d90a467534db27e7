# The Orders team (zone USA). Owner: acme/orders-data@main.

team "USA" "orders" {
  documentation { text = "Owns the order management system and its predecessor." }

  # Read incrementally: each run fetches the rows whose `updated_at` moved past the last run's watermark.
  # Watermark ingestion never deletes.
  datastore "orders_db" {
    production_status = "PRODUCTION"
    documentation { text = "The order management database." }

    capture "sql_watermark" {
      consistency = "SINGLE_DATASET" # orders and order_lines are ingested as separate streams
      trigger     = { cron = "*/15 * * * *" }
      credential  = "orders_reader"

      source {
        postgres {
          host     = "orders-db.ny1.acme.internal"
          port     = 5432
          database = "orders"
        }
      }

      watermark = { column = "updated_at" }
      locations = ["Acme:USA/NY_1"]
    }

    dataset "orders" {
      classifications = ["PC1"] # pseudonymous: refers to customers by id only
      table {
        columns = {
          order_id      = { type = "bigint", nullable = false, primary_key = true }
          customer_id   = { type = "bigint", nullable = false }
          order_date    = { type = "date", nullable = false }
          status        = { type = "varchar(20)", nullable = false, doc = "placed, shipped, delivered or cancelled" }
          currency      = { type = "char(3)", nullable = false }
          total_amount  = { type = "decimal(12,2)", nullable = false }
          discount_rate = { type = "real", doc = "0.0 to 1.0" }
          notes         = { type = "text" }
          updated_at    = { type = "timestamp", nullable = false }
        }
        partition_key = ["order_date"]
      }
    }

    dataset "order_lines" {
      classifications = ["IP"]
      table {
        columns = {
          order_id   = { type = "bigint", nullable = false, primary_key = true }
          line_no    = { type = "integer", nullable = false, primary_key = true }
          sku        = { type = "varchar(32)", nullable = false }
          quantity   = { type = "integer", nullable = false }
          unit_price = { type = "decimal(12,2)", nullable = false }
          tax_rate   = { type = "decimal(5,4)" }
          updated_at = { type = "timestamp", nullable = false }
        }
        primary_key = ["order_id", "line_no"]
      }
    }
  }

  # The old order system (MySQL), kept until finance has reconciled it against orders_db. Deprecated:
  # no new consumers; the one left says so with `deprecations_allowed = true`.
  datastore "legacy_orders_db" {
    production_status = "NOT_PRODUCTION"
    deprecated        = true
    documentation { text = "Orders from the retired order system, 2012-2019. Replaced by orders_db." }

    capture "sql_snapshot" {
      consistency = "MULTI_DATASET"
      trigger     = { external = true } # started by the migration tooling, not on a schedule
      credential  = "legacy_orders_reader"

      source {
        mysql {
          host     = "legacy-orders.nj1.acme.internal"
          port     = 3306
          database = "orders_v1"
        }
      }

      table_for_dataset = { legacy_orders = "ORDERS" }
      locations         = ["Acme:USA/NJ_1"]
    }

    dataset "legacy_orders" {
      classifications = ["PC1"]
      table {
        columns = {
          order_ref    = { type = "varchar(24)", nullable = false, primary_key = true }
          customer_ref = { type = "varchar(24)", nullable = false }
          amount       = { type = "decimal(10,2)", nullable = false }
          placed_at    = { type = "timestamp", nullable = false }
        }
      }
    }
  }
}
