ecosystem "other" {
  owning_repo = { repo = "acme/other", branch = "main" }
}
