# The "shop" team: the data it produces (datastores) and the data it consumes (workspaces).
#
# Owner: the team's repo, named by its `team_declaration` in zone_retail.ds.hcl.

team "retail" "shop" {
  documentation { text = "Runs the online shop and its databases." }

  # ---- Producing -------------------------------------------------------------------------------------

  # The shop's customer database, captured change by change (CDC) with Debezium. CDC needs a Postgres
  # source and a primary key on every dataset.
  datastore "customer_db" {
    documentation { text = "Customers and their addresses, from the shop's OLTP database." }

    capture "cdc" {
      consistency = "MULTI_DATASET" # one ingestion stream for both tables, committed together
      trigger     = { interval = "1m" } # how often landed changes are merged
      credential  = "shop_db" # SHOP_DB_USER / SHOP_DB_PASSWORD

      source {
        postgres {
          host     = "127.0.0.1"
          port     = 55432
          database = "shop"
        }
      }
    }

    # Each dataset is one source table. Columns are listed in order; the primary key columns are not null.
    dataset "customers" {
      classifications = ["PC3"] # personal data
      table {
        columns = {
          id            = { type = "bigint", nullable = false, primary_key = true }
          first_name    = { type = "varchar(100)", nullable = false }
          last_name     = { type = "varchar(100)", nullable = false }
          email         = { type = "varchar(320)" }
          date_of_birth = { type = "date" }
          loyalty_tier  = { type = "smallint", doc = "0 = none, 1 = silver, 2 = gold" }
          is_active     = { type = "boolean", nullable = false }
          created_at    = { type = "timestamptz", nullable = false }
        }
      }
    }

    dataset "addresses" {
      classifications = ["PC3"]
      table {
        columns = {
          id           = { type = "bigint", nullable = false, primary_key = true }
          customer_id  = { type = "bigint", nullable = false }
          line1        = { type = "varchar(200)", nullable = false }
          city         = { type = "varchar(100)", nullable = false }
          postal_code  = { type = "varchar(20)" }
          country_code = { type = "char(2)", nullable = false }
          is_primary   = { type = "boolean", nullable = false }
        }
      }
    }
  }

  # The product catalogue, copied whole on every run (a snapshot): rows missing from the source are deleted.
  datastore "product_db" {
    documentation { text = "The product catalogue." }

    capture "sql_snapshot" {
      consistency = "MULTI_DATASET"
      trigger     = { interval = "5m" }
      credential  = "shop_db"

      source {
        postgres {
          host     = "127.0.0.1"
          port     = 55432
          database = "shop"
        }
      }
    }

    dataset "products" {
      classifications = ["PUB"] # public: it is on the website
      table {
        columns = {
          sku        = { type = "varchar(32)", nullable = false, primary_key = true }
          name       = { type = "varchar(200)", nullable = false }
          price      = { type = "decimal(10,2)", nullable = false }
          currency   = { type = "char(3)", nullable = false }
          in_stock   = { type = "integer", nullable = false, doc = "units on hand" }
          updated_at = { type = "timestamp" }
        }
      }
    }
  }

  # ---- Consuming -------------------------------------------------------------------------------------

  # A workspace is what a consumer reads: schema `ws_analytics` in the merge database, one view per
  # (dataset group, store, dataset), e.g. `ws_analytics.live__customer_db__customers`.
  workspace "analytics" {
    # The current state of the data, refreshed within minutes: served by `zero_live`.
    dataset_group "live" {
      requirements = { milestoning = "LIVE_ONLY", latency = "MINUTES" }
      sink "customer_db" "customers" {}
      sink "customer_db" "addresses" {}
      sink "product_db" "products" {}
      sink "directory" "customer_directory" {} # built by the transformer below
    }

    # Every version of every row: served by `zero_forensic`, with `..__history` views as well.
    dataset_group "audit" {
      requirements = { milestoning = "FORENSIC", latency = "HOURS" }
      sink "customer_db" "customers" {}
      sink "product_db" "products" {}
    }
  }

  # A transformer: a SQL query over its workspace's views whose result becomes a new datastore
  # (`directory`), which other workspaces consume like any other.
  workspace "directory_job" {
    # A transformer's groups state no requirements: they are served by the live data platform.
    dataset_group "inputs" {
      sink "customer_db" "customers" {}
      sink "customer_db" "addresses" {}
    }

    transformer "build_directory" {
      # No trigger: it runs after each commit of one of its inputs. One row per active customer, with the
      # city of their primary address if they have one.
      sql = <<-SQL
        SELECT DISTINCT ON (c.id)
               c.id                              AS customer_id,
               c.first_name || ' ' || c.last_name AS full_name,
               c.email                           AS email,
               a.city                            AS city,
               a.country_code                    AS country_code
          FROM {{ input "inputs" "customer_db" "customers" }} AS c
          LEFT JOIN {{ input "inputs" "customer_db" "addresses" }} AS a
                 ON a.customer_id = c.id AND a.is_primary
         WHERE c.is_active
         ORDER BY c.id, a.id
      SQL

      # The columns match the SELECT list, in order.
      output "directory" {
        dataset "customer_directory" {
          classifications = ["PC3"]
          table {
            columns = {
              customer_id  = { type = "bigint", nullable = false, primary_key = true }
              full_name    = { type = "text", nullable = false }
              email        = { type = "varchar(320)" }
              city         = { type = "varchar(100)" }
              country_code = { type = "char(2)" }
            }
          }
        }
      }
    }
  }
}
