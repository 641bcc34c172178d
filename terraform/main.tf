# Rendered by `provisioner render` from cluster.yaml: edit that (or templates/), not this file.
#
# Local target: every host is a Docker container that runs sshd and its own dockerd, on a
# Docker network with the spec's subnet and fixed IPs. terraform_data + local-exec need no
# provider download. Commands are argument arrays (`interpreter`), never shell text, and the
# public key travels as an environment variable, so no value can change a command's meaning.
# Destroy-time provisioners may only read `self`, so what they need is kept in
# triggers_replace.

locals {
  hosts = {
    lb = {
      container = "clusterlab-lb"
      volume    = "clusterlab-lb-docker"
      ip        = "10.77.0.10"
      run       = ["docker", "run", "-d", "--name", "clusterlab-lb", "--hostname", "lb", "--network", "clusterlab-net", "--ip", "10.77.0.10", "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined", "--device-cgroup-rule", "a *:* rwm", "--tmpfs", "/run", "--tmpfs", "/tmp", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "clusterlab-lb-docker:/var/lib/docker", "--label", "clusterlab.cluster=clusterlab", "-e", "SSH_USER=clusterlab", "-e", "SSH_PUBKEY", "-p", "127.0.0.1:8080:80", "--pull=never"]
      run_image = "clusterlab/vm:latest"
    }
    web1 = {
      container = "clusterlab-web1"
      volume    = "clusterlab-web1-docker"
      ip        = "10.77.0.11"
      run       = ["docker", "run", "-d", "--name", "clusterlab-web1", "--hostname", "web1", "--network", "clusterlab-net", "--ip", "10.77.0.11", "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined", "--device-cgroup-rule", "a *:* rwm", "--tmpfs", "/run", "--tmpfs", "/tmp", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "clusterlab-web1-docker:/var/lib/docker", "--label", "clusterlab.cluster=clusterlab", "-e", "SSH_USER=clusterlab", "-e", "SSH_PUBKEY", "--pull=never"]
      run_image = "clusterlab/vm:latest"
    }
    web2 = {
      container = "clusterlab-web2"
      volume    = "clusterlab-web2-docker"
      ip        = "10.77.0.12"
      run       = ["docker", "run", "-d", "--name", "clusterlab-web2", "--hostname", "web2", "--network", "clusterlab-net", "--ip", "10.77.0.12", "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined", "--device-cgroup-rule", "a *:* rwm", "--tmpfs", "/run", "--tmpfs", "/tmp", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "clusterlab-web2-docker:/var/lib/docker", "--label", "clusterlab.cluster=clusterlab", "-e", "SSH_USER=clusterlab", "-e", "SSH_PUBKEY", "--pull=never"]
      run_image = "clusterlab/vm:latest"
    }
    redis = {
      container = "clusterlab-redis"
      volume    = "clusterlab-redis-docker"
      ip        = "10.77.0.20"
      run       = ["docker", "run", "-d", "--name", "clusterlab-redis", "--hostname", "redis", "--network", "clusterlab-net", "--ip", "10.77.0.20", "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined", "--device-cgroup-rule", "a *:* rwm", "--tmpfs", "/run", "--tmpfs", "/tmp", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "clusterlab-redis-docker:/var/lib/docker", "-v", "clusterlab-redis-data:/srv/clusterlab", "--label", "clusterlab.cluster=clusterlab", "-e", "SSH_USER=clusterlab", "-e", "SSH_PUBKEY", "--pull=never"]
      run_image = "clusterlab/vm:latest"
    }
    postgres = {
      container = "clusterlab-postgres"
      volume    = "clusterlab-postgres-docker"
      ip        = "10.77.0.21"
      run       = ["docker", "run", "-d", "--name", "clusterlab-postgres", "--hostname", "postgres", "--network", "clusterlab-net", "--ip", "10.77.0.21", "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined", "--device-cgroup-rule", "a *:* rwm", "--tmpfs", "/run", "--tmpfs", "/tmp", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "clusterlab-postgres-docker:/var/lib/docker", "-v", "clusterlab-postgres-data:/srv/clusterlab", "--label", "clusterlab.cluster=clusterlab", "-e", "SSH_USER=clusterlab", "-e", "SSH_PUBKEY", "--pull=never"]
      run_image = "clusterlab/vm:latest"
    }
    tester = {
      container = "clusterlab-tester"
      volume    = "clusterlab-tester-docker"
      ip        = "10.77.0.30"
      run       = ["docker", "run", "-d", "--name", "clusterlab-tester", "--hostname", "tester", "--network", "clusterlab-net", "--ip", "10.77.0.30", "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined", "--device-cgroup-rule", "a *:* rwm", "--tmpfs", "/run", "--tmpfs", "/tmp", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "clusterlab-tester-docker:/var/lib/docker", "--label", "clusterlab.cluster=clusterlab", "-e", "SSH_USER=clusterlab", "-e", "SSH_PUBKEY", "--pull=never"]
      run_image = "clusterlab/vm:latest"
    }
  }
}

resource "terraform_data" "network" {
  triggers_replace = {
    name    = "clusterlab-net"
    subnet  = "10.77.0.0/24"
    gateway = "10.77.0.1"
  }

  provisioner "local-exec" {
    interpreter = ["docker", "network", "create", "--subnet", "10.77.0.0/24", "--gateway", "10.77.0.1"]
    command     = self.triggers_replace.name
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["docker", "network", "rm"]
    command     = self.triggers_replace.name
  }
}

# One VM per host. Only what needs a new machine replaces it: its address, its image, its
# engine's volume. Data hosts keep PostgreSQL's and Redis' files on a separate volume
# (`<cluster>-<host>-data`, mounted at /srv/clusterlab) that no destroy-time provisioner
# removes, so a replaced VM reattaches it; `provisioner destroy --delete-data` deletes it.
resource "terraform_data" "host" {
  for_each = local.hosts

  triggers_replace = {
    container = each.value.container
    volume    = each.value.volume
    ip        = each.value.ip
    image     = "clusterlab/vm:latest"
  }

  provisioner "local-exec" {
    interpreter = each.value.run
    command     = each.value.run_image
    environment = {
      SSH_PUBKEY = trimspace(var.ssh_public_key)
    }
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["docker", "rm", "-f"]
    command     = self.triggers_replace.container
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["docker", "volume", "rm"]
    command     = self.triggers_replace.volume
  }

  depends_on = [terraform_data.network]
}

# The login key, rotated in place: a new key is written into the running VM, which keeps
# its host keys, its engine and its data.
resource "terraform_data" "authorized_key" {
  for_each = local.hosts

  triggers_replace = {
    container = each.value.container
    key       = sha256(trimspace(var.ssh_public_key))
  }

  provisioner "local-exec" {
    interpreter = ["docker", "exec", "-e", "SSH_PUBKEY", self.triggers_replace.container]
    command     = "clusterlab-authorize-key"
    environment = {
      SSH_PUBKEY = trimspace(var.ssh_public_key)
    }
  }

  depends_on = [terraform_data.host]
}

moved {
  from = terraform_data.vm_lb
  to   = terraform_data.host["lb"]
}

moved {
  from = terraform_data.vm_web1
  to   = terraform_data.host["web1"]
}

moved {
  from = terraform_data.vm_web2
  to   = terraform_data.host["web2"]
}

moved {
  from = terraform_data.vm_redis
  to   = terraform_data.host["redis"]
}

moved {
  from = terraform_data.vm_postgres
  to   = terraform_data.host["postgres"]
}

moved {
  from = terraform_data.vm_tester
  to   = terraform_data.host["tester"]
}
