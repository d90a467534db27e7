zone "sales" {
  team_declaration "crm" {}
}
