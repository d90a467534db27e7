zone "sales" {
  team_declaration "crm" { owning_repo = { repo = "acme/crm", branch = "main" } }
  data_platform_policy "known" { allowed = ["zero_live", "zero_forensic", "spark"] }
}
