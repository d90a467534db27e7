# The Campaigns team (zone Marketing). Owner: acme/marketing-campaigns@main.
#
# Everything this team consumes is served by `cloud_live`, in AWS (see platform/assignments.ds.hcl).

team "Marketing" "campaigns" {
  documentation { text = "Web analytics and paid campaigns." }

  # Existing Kafka topics of JSON records, landed by a Kafka Connect sink.
  datastore "clickstream" {
    documentation { text = "Events published by the website and the ad server." }

    capture "kafka" {
      consistency       = "SINGLE_DATASET" # one stream per topic
      trigger           = { interval = "1m" }
      credential        = "marketing_kafka"
      topic_for_dataset = { page_views = "web.page_views.v1", ad_clicks = "ads.clicks.v1" }
      locations         = ["AWS:us-east-1"]
    }

    dataset "page_views" {
      classifications = ["PC1"] # session ids, no names
      table {
        columns = {
          event_id     = { type = "uuid", nullable = false, primary_key = true }
          session_id   = { type = "uuid", nullable = false }
          occurred_at  = { type = "timestamptz", nullable = false }
          url          = { type = "text", nullable = false }
          referrer     = { type = "text" }
          user_agent   = { type = "varchar" }
          time_on_page = { type = "interval" }
          scroll_depth = { type = "real", doc = "fraction of the page seen, 0.0 to 1.0" }
          properties   = { type = "json" }
        }
      }
    }

    dataset "ad_clicks" {
      classifications = ["IP"]
      table {
        columns = {
          click_id    = { type = "uuid", nullable = false, primary_key = true }
          campaign_id = { type = "integer", nullable = false }
          sku         = { type = "varchar(32)", nullable = false }
          clicked_at  = { type = "timestamptz", nullable = false }
          cost        = { type = "decimal(10,4)", nullable = false, doc = "USD" }
        }
      }
    }
  }

  workspace "campaign_performance" {
    priority = "MEDIUM"

    dataset_group "clicks_live" {
      requirements = { milestoning = "LIVE_ONLY", latency = "SECONDS" }
      sink "clickstream" "page_views" {}
      sink "clickstream" "ad_clicks" {}
      sink "product_catalog" "products" {}
      sink "campaign_stats_db" "campaign_daily" {}
    }
  }

  # A transformer without a trigger: it runs after each commit of one of its inputs.
  workspace "attribution_job" {
    priority = "LOW"

    dataset_group "attribution_inputs" {
      sink "clickstream" "ad_clicks" {}
      sink "product_catalog" "products" {}
    }

    transformer "campaign_attribution" {
      sql = <<-SQL
        SELECT k.campaign_id                          AS campaign_id,
               (k.clicked_at AT TIME ZONE 'UTC')::date AS click_date,
               count(*)                               AS clicks,
               sum(k.cost)::decimal(14,4)             AS spend,
               count(DISTINCT p.sku)                  AS products_clicked
          FROM {{ input "attribution_inputs" "clickstream" "ad_clicks" }} AS k
          JOIN {{ input "attribution_inputs" "product_catalog" "products" }} AS p ON p.sku = k.sku
         GROUP BY k.campaign_id, (k.clicked_at AT TIME ZONE 'UTC')::date
      SQL

      output "campaign_stats_db" {
        dataset "campaign_daily" {
          classifications = ["IP"]
          table {
            columns = {
              campaign_id      = { type = "integer", nullable = false, primary_key = true }
              click_date       = { type = "date", nullable = false, primary_key = true }
              clicks           = { type = "bigint", nullable = false }
              spend            = { type = "decimal(14,4)", nullable = false }
              products_clicked = { type = "bigint", nullable = false }
            }
            primary_key = ["campaign_id", "click_date"]
          }
        }
      }
    }
  }
}
