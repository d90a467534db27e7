# The base model every invalid case starts from: valid on its own. A case replaces a file by writing one of
# the same name, or starts from nothing with an empty `NO_BASE` file.
ecosystem "acme" {
  owning_repo = { repo = "acme/eco", branch = "main" }
  vendor "Acme" {
    cloud = "PRIVATE"
    location "USA" {
      location "NY" {}
    }
  }
  zone_declaration "sales" { owning_repo = { repo = "acme/sales", branch = "main" } }
}
