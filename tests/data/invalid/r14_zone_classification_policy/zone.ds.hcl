zone "sales" {
  team_declaration "crm" { owning_repo = { repo = "acme/crm", branch = "main" } }
  classification_policy "no_personal" { not_allowed = ["PC3"] }
}
