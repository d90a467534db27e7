assignment "report" "live" { data_platform = "zero_live" }
assignment "reports" "lve" { data_platform = "zero_live" }
