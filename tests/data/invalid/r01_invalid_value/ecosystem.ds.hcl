ecosystem "acme" {
  owning_repo = { repo = "acme/eco", branch = "main" }
  vendor "Acme" {
    cloud = "AMAZON"
    location "USA" {
      location "NY" {}
    }
  }
  zone_declaration "sales" { owning_repo = { repo = "acme/sales", branch = "main" } }
}
