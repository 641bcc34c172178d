# Rendered by `provisioner render` from cluster.yaml: edit that (or templates/), not this file.

terraform {
  # terraform_data arrived in 1.4; the local target needs no provider, so `init` is offline.
  required_version = ">= 1.4"
}
