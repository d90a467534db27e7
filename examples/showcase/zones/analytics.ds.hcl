# The Analytics zone: reporting and data science on data from the other zones. Owner: acme/zone-analytics@main.

zone "Analytics" {
  documentation {
    markdown = <<-MD
      Reporting and data science. Workspaces here:

      - never see material non-public information (`MNPI`) or social security numbers;
      - run on the on-premises data platforms only.
    MD
  }

  team_declaration "insights" {
    owning_repo = { repo = "acme/insights", branch = "main" }
  }
  team_declaration "finance" {
    owning_repo = { repo = "acme/finance-analytics", branch = "release" }
  }

  classification_policy "no_mnpi_no_ssn" {
    not_allowed = ["MNPI", "PC3:ssn"]
  }

  data_platform_policy "on_premises_platforms" {
    allowed = ["acme_live", "acme_forensic"]
  }
}
