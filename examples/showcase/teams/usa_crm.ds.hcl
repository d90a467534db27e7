# The CRM team (zone USA). Owner: acme/crm-data@main.

team "USA" "crm" {
  documentation { text = "Owns the customer relationship database." }

  # Captured by Debezium CDC: every insert, update and delete, in source order.
  datastore "customer_db" {
    production_status = "PRODUCTION" # so every dataset must be classified
    deprecated        = false
    documentation { text = "The CRM OLTP database (Postgres, schema sales)." }

    capture "cdc" {
      consistency = "MULTI_DATASET" # customers and addresses commit together
      trigger     = { interval = "30s" }
      credential  = "crm_cdc"

      source {
        postgres {
          host     = "crm-db.ny1.acme.internal"
          port     = 5432
          database = "crm"
          schema   = "sales"
        }
      }

      # The source tables have older names than the datasets.
      table_for_dataset = { customers = "customer", addresses = "customer_address" }
      locations         = ["Acme:USA/NY_1"]
    }

    # Classified column by column: consumers' policies see the union of the column classifications.
    dataset "customers" {
      documentation { text = "One row per customer." }
      table {
        columns = {
          id               = { type = "bigint", nullable = false, primary_key = true, classifications = ["IP"] }
          first_name       = { type = "varchar(100)", nullable = false, classifications = ["PC3:name"] }
          last_name        = { type = "varchar(100)", nullable = false, classifications = ["PC3:name"] }
          email            = { type = "varchar(320)", classifications = ["PC3:email"] }
          phone            = { type = "varchar(32)", classifications = ["PC3:phone"], doc = "E.164 format" }
          date_of_birth    = { type = "date", classifications = ["PC3:dob"] }
          country_code     = { type = "char(2)", nullable = false, classifications = ["PUB"], doc = "ISO 3166-1 alpha-2" }
          loyalty_tier     = { type = "smallint", nullable = false, classifications = ["IP"], doc = "0 none, 1 silver, 2 gold" }
          marketing_opt_in = { type = "boolean", nullable = false, classifications = ["IP"] }
          created_at       = { type = "timestamptz", nullable = false, classifications = ["IP"] }
          updated_at       = { type = "timestamptz", nullable = false, classifications = ["IP"] }
        }
      }
    }

    # Classified as a whole.
    dataset "addresses" {
      classifications = ["PC2:address"]
      deprecated      = false
      documentation { text = "Postal addresses; a customer has at most one primary address." }
      table {
        columns = {
          id           = { type = "bigint", nullable = false, primary_key = true }
          customer_id  = { type = "bigint", nullable = false }
          address_type = { type = "varchar(16)", nullable = false, doc = "billing or shipping" }
          line1        = { type = "varchar(200)", nullable = false }
          line2        = { type = "varchar(200)" }
          city         = { type = "varchar(100)", nullable = false }
          region       = { type = "varchar(100)" }
          postal_code  = { type = "varchar(20)" }
          country_code = { type = "char(2)", nullable = false }
          is_primary   = { type = "boolean", nullable = false }
          updated_at   = { type = "timestamptz", nullable = false }
        }
      }
    }
  }
}
