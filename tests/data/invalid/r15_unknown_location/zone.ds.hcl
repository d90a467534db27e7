zone "sales" {
  team_declaration "crm" { owning_repo = { repo = "acme/crm", branch = "main" } }
  location_policy "not_in_europe" { not_allowed = ["Acme:EU"] }
  vendor_policy "no_amazon" { not_allowed = ["Amazon"] }
}
