zone "sales" {
  team_declaration "crm" { owning_repo = { repo = "acme/crm", branch = "main" } }
  team_declaration "billing" { owning_repo = { repo = "acme/billing", branch = "main" } }
}
