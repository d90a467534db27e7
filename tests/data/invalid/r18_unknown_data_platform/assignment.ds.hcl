assignment "reports" "live" { data_platform = "zero_lve" }
