# The Acme ecosystem: vendors, locations and the governance zones.
#
# Owner: the platform team, acme/data-ecosystem@main (the ecosystem's `owning_repo`). It owns every file in
# platform/: this one, both platforms and the assignments.

ecosystem "Acme" {
  owning_repo = { repo = "acme/data-ecosystem", branch = "main" }

  documentation {
    markdown = <<-MD
      # Acme data ecosystem

      Every dataset Acme produces or consumes is declared here. Changes arrive as pull requests and are
      checked by `ds plan --base origin/main`:

      * the **platform team** owns this folder (vendors, zones, platforms, assignments);
      * each **zone** owns its policies and its list of teams (`zones/`);
      * each **team** owns its datastores and workspaces (`teams/`).
    MD
    tags = { owner = "platform-team", slack = "#data-platform" }
  }

  # Infrastructure vendors and their location trees. A location is written "Vendor:Path/Sub".
  vendor "Acme" {
    cloud = "PRIVATE"
    documentation { text = "Acme's own data centres." }

    location "USA" {
      location "NY_1" {}
      location "NJ_1" {}
    }
    location "Europe" {
      location "Frankfurt" {}
    }
  }

  vendor "AWS" {
    cloud = "AWS"
    documentation { text = "Amazon Web Services, used by Marketing." }

    location "us-east-1" {}
    location "eu-central-1" {}
  }

  # The governance zones. Each is defined in zones/ by the repo named here.
  zone_declaration "USA" {
    owning_repo = { repo = "acme/zone-usa", branch = "main" }
  }
  zone_declaration "Marketing" {
    owning_repo = { repo = "acme/zone-marketing", branch = "main" }
  }
  zone_declaration "Analytics" {
    owning_repo = { repo = "acme/zone-analytics", branch = "main" }
  }
}
