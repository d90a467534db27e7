# The Marketing zone: web analytics and campaigns, run in AWS. Owner: acme/zone-marketing@main.
#
# Marketing workspaces may only read public, internal and pseudonymous (PC1) data: no direct personal data.

zone "Marketing" {
  documentation {
    text = "Marketing: clickstream, campaigns and the product catalogue."
    tags = { cost_centre = "MKT-200", steward = "jane.doe" }
  }

  team_declaration "campaigns" {
    owning_repo = { repo = "acme/marketing-campaigns", branch = "main" }
  }
  team_declaration "merchandising" {
    owning_repo = { repo = "acme/merchandising-data", branch = "main" }
  }

  classification_policy "no_personal_data" {
    allowed = ["PUB", "IP", "PC1"]
  }
}
