# The Finance team (zone Analytics). Owner: acme/finance-analytics@release.

team "Analytics" "finance" {
  documentation { text = "Financial control: reconciles the legacy order system against the new one." }

  workspace "finance_reconciliation" {
    priority          = "LOW"
    production_status = "NOT_PRODUCTION"

    dataset_group "legacy_check" {
      requirements = { milestoning = "FORENSIC", latency = "DAYS" }
      # legacy_orders_db is deprecated: this consumer knows, and accepts it until the reconciliation ends.
      sink "legacy_orders_db" "legacy_orders" { deprecations_allowed = true }
      sink "orders_db" "orders" {}
    }
  }
}
