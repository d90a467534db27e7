# A block that is never closed: the file does not parse.
zone "marketing" {
  team_declaration "web" { owning_repo = { repo = "acme/web", branch = "main" } }
