# The "retail" governance zone.
#
# Owner: the zone's repo, named by its `zone_declaration` in ecosystem.ds.hcl. The zone decides which teams
# exist in it and, in bigger models, the policies its data must follow.

zone "retail" {
  documentation { text = "Retail: the online shop's customers, products and the reports built on them." }

  # Teams are declared here and defined in their own file by the team's owners.
  team_declaration "shop" {
    owning_repo = { repo = "acme/shop-data", branch = "main" }
  }
}
