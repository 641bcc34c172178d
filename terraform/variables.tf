# Rendered by `provisioner render` from cluster.yaml: edit that (or templates/), not this file.

variable "ssh_public_key" {
  description = "Public key text installed for the spec's ssh.user on every host (`provisioner` sets TF_VAR_ssh_public_key from the file ssh.public_key)."
  type        = string
}
