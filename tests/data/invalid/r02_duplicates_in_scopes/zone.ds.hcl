zone "sales" {
  team_declaration "crm" { owning_repo = { repo = "acme/crm", branch = "main" } }
  team_declaration "crm" { owning_repo = { repo = "acme/crm2", branch = "main" } }
}
