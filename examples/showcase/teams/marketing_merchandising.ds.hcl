# The Merchandising team (zone Marketing). Owner: acme/merchandising-data@main.

team "Marketing" "merchandising" {
  documentation { text = "Owns the product catalogue." }

  # Copied whole every hour: a row missing from the source is a delete.
  datastore "product_catalog" {
    production_status = "PRODUCTION"
    documentation { text = "The product catalogue shown on acme.example." }

    capture "sql_snapshot" {
      consistency = "MULTI_DATASET"
      trigger     = { interval = "1h" }
      credential  = "catalog_reader"

      source {
        postgres {
          host     = "catalog-db.nj1.acme.internal"
          port     = 5432
          database = "catalog"
        }
      }

      locations = ["Acme:USA/NJ_1"]
    }

    dataset "products" {
      classifications = ["PUB"]
      documentation {
        text = "Every product ever listed; inactive ones are kept."
        tags = { domain = "catalogue" }
      }
      table {
        columns = {
          sku           = { type = "varchar(32)", nullable = false, primary_key = true }
          name          = { type = "varchar(200)", nullable = false }
          description   = { type = "text" }
          category_path = { type = "varchar", doc = "e.g. Garden/Tools/Shears" }
          list_price    = { type = "decimal(10,2)", nullable = false }
          weight_kg     = { type = "double" }
          thumbnail     = { type = "bytea", doc = "small PNG" }
          attributes    = { type = "json", doc = "free-form attributes: colour, size, ..." }
          is_active     = { type = "boolean", nullable = false }
          updated_at    = { type = "timestamp", nullable = false }
        }
      }
    }

    # Replaced by products.category_path. Nobody consumes it any more, so it can be removed in a later change.
    dataset "categories" {
      classifications = ["PUB"]
      deprecated      = true
      table {
        columns = {
          category_id = { type = "integer", nullable = false, primary_key = true }
          name        = { type = "varchar(100)", nullable = false }
          parent_id   = { type = "integer" }
        }
      }
    }
  }
}
