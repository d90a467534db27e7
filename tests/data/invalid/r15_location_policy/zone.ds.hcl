zone "sales" {
  team_declaration "crm" { owning_repo = { repo = "acme/crm", branch = "main" } }
  location_policy "not_in_ny" { not_allowed = ["Acme:USA/NY"] }
}
