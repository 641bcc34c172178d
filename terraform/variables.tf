# Rendered by `provisioner render` from cluster.yaml: edit that (or templates/), not this file.

variable "ssh_public_key" {
  description = "Public key text installed for clusterlab on every host (set TF_VAR_ssh_public_key from .clusterlab/id_ed25519.pub)."
  type        = string
}
