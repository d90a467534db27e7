zone "sales" {
  team_declaration "crm" { owning_repo = { repo = "acme/crm", branch = "main" } }
  vendor_policy "public_clouds_only" { not_allowed = ["PRIVATE"] }
}
