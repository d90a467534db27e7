zone "sales" {
  team_declaration "crm" { owning_repo = { repo = "acme/crm", branch = "main" } }
}
