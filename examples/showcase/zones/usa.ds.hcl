# The USA zone: the operational systems of Acme's US business. Owner: acme/zone-usa@main.
#
# Its data stays in Acme's US data centres: a group that consumes a USA store must be served by a
# platform located there and not in a public cloud.

zone "USA" {
  documentation { text = "US operational systems: customers and orders." }

  team_declaration "crm" {
    owning_repo = { repo = "acme/crm-data", branch = "main" }
  }
  team_declaration "orders" {
    owning_repo = { repo = "acme/orders-data", branch = "main" }
  }

  location_policy "us_data_centres" {
    allowed = ["Acme:USA/NY_1", "Acme:USA/NJ_1"]
  }

  vendor_policy "no_public_cloud" {
    not_allowed = ["AWS"]
  }
}
