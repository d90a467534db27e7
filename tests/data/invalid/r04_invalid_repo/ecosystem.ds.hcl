ecosystem "acme" {
  owning_repo = { repo = "acme", branch = "main" }
  vendor "Acme" {
    cloud = "PRIVATE"
    location "USA" {
      location "NY" {}
    }
  }
  zone_declaration "sales" { owning_repo = { repo = "acme/sales" } }
}
