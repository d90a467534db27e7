zone "sales" {
  team_declaration "crm" { owning_repo = { repo = "acme/crm", branch = "main" } }
  data_platform_policy "forensic_only" { allowed = ["zero_forensic"] }
}
