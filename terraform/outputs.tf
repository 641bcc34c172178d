# Rendered by `provisioner render` from cluster.yaml: edit that (or templates/), not this file.

output "hosts" {
  description = "Every host of the cluster by name: its name, role and IP (read by `provisioner up`)."
  value = {
    lb       = { name = "lb", role = "load_balancer", ip = "10.77.0.10" }
    web1     = { name = "web1", role = "web", ip = "10.77.0.11" }
    web2     = { name = "web2", role = "web", ip = "10.77.0.12" }
    redis    = { name = "redis", role = "redis", ip = "10.77.0.20" }
    postgres = { name = "postgres", role = "postgres", ip = "10.77.0.21" }
    tester   = { name = "tester", role = "load_tester", ip = "10.77.0.30" }
  }
}
