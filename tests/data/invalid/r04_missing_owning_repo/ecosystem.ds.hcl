ecosystem "acme" {
  vendor "Acme" {
    cloud = "PRIVATE"
    location "USA" {
      location "NY" {}
    }
  }
  zone_declaration "sales" {}
}
