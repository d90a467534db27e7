# Which data platform serves which dataset group. Owner: the platform team (acme/data-ecosystem@main).
#
# There are two LIVE_ONLY data platforms (acme_live, cloud_live), so every LIVE_ONLY group and every
# transformer input group is assigned here. FORENSIC groups need no assignment: acme_forensic is the only
# FORENSIC data platform.

assignment "sales_reporting" "live_sales" { data_platform = "acme_live" }
assignment "customer_360" "customer_live" { data_platform = "acme_live" }
assignment "segmentation_job" "segmentation_inputs" { data_platform = "acme_live" }

assignment "campaign_performance" "clicks_live" { data_platform = "cloud_live" }
assignment "attribution_job" "attribution_inputs" { data_platform = "cloud_live" }
