ecosystem "acme" {
  owning_repo = { repo = "acme/eco", branch = "main" }
  vendor "Acme" {
    cloud = "PRIVATE"
    location "USA" {
      location "NY" {}
    }
  }
  zone_declaration "sales" { owning_repo = { repo = "acme/sales", branch = "main" } }
  zone_declaration "marketing" { owning_repo = { repo = "acme/marketing", branch = "main" } }
}
