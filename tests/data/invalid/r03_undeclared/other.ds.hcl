# A zone the ecosystem does not declare (a typo of `sales`), a team of a zone that does not exist, and a team
# its zone does not declare (a typo of `crm`).
zone "sale" {}
team "finance" "ap" {}
team "sales" "crn" {}
