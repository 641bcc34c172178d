# Rendered by `provisioner render` from cluster.yaml: edit that (or templates/), not this file.
#
# Local target: every host is a Docker container that runs sshd and its own dockerd, on a
# Docker network with the spec's subnet and fixed IPs. terraform_data + local-exec need no
# provider download. Destroy-time provisioners may only read `self`, so what they need is
# kept in triggers_replace.

resource "terraform_data" "network" {
  triggers_replace = {
    name    = "clusterlab-net"
    subnet  = "10.77.0.0/24"
    gateway = "10.77.0.1"
  }

  provisioner "local-exec" {
    command = "docker network create --subnet 10.77.0.0/24 --gateway 10.77.0.1 clusterlab-net"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "docker network rm ${self.triggers_replace.name}"
  }
}

resource "terraform_data" "vm_lb" {
  triggers_replace = {
    container  = "clusterlab-lb"
    volume     = "clusterlab-lb-docker"
    ip         = "10.77.0.10"
    image      = "clusterlab/vm:latest"
    public_key = sha256(trimspace(var.ssh_public_key))
  }

  provisioner "local-exec" {
    command = "docker run -d --name clusterlab-lb --hostname lb --network clusterlab-net --ip 10.77.0.10 --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined --security-opt apparmor=unconfined --device-cgroup-rule='a *:* rwm' --tmpfs /run --tmpfs /tmp -v /sys/fs/cgroup:/sys/fs/cgroup:rw -v clusterlab-lb-docker:/var/lib/docker --label clusterlab.cluster=clusterlab -e SSH_USER=clusterlab -e SSH_PUBKEY=\"${trimspace(var.ssh_public_key)}\" -p 8080:80 clusterlab/vm:latest"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "docker rm -f ${self.triggers_replace.container}"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "docker volume rm ${self.triggers_replace.volume}"
  }

  depends_on = [terraform_data.network]
}

resource "terraform_data" "vm_web1" {
  triggers_replace = {
    container  = "clusterlab-web1"
    volume     = "clusterlab-web1-docker"
    ip         = "10.77.0.11"
    image      = "clusterlab/vm:latest"
    public_key = sha256(trimspace(var.ssh_public_key))
  }

  provisioner "local-exec" {
    command = "docker run -d --name clusterlab-web1 --hostname web1 --network clusterlab-net --ip 10.77.0.11 --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined --security-opt apparmor=unconfined --device-cgroup-rule='a *:* rwm' --tmpfs /run --tmpfs /tmp -v /sys/fs/cgroup:/sys/fs/cgroup:rw -v clusterlab-web1-docker:/var/lib/docker --label clusterlab.cluster=clusterlab -e SSH_USER=clusterlab -e SSH_PUBKEY=\"${trimspace(var.ssh_public_key)}\" clusterlab/vm:latest"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "docker rm -f ${self.triggers_replace.container}"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "docker volume rm ${self.triggers_replace.volume}"
  }

  depends_on = [terraform_data.network]
}

resource "terraform_data" "vm_web2" {
  triggers_replace = {
    container  = "clusterlab-web2"
    volume     = "clusterlab-web2-docker"
    ip         = "10.77.0.12"
    image      = "clusterlab/vm:latest"
    public_key = sha256(trimspace(var.ssh_public_key))
  }

  provisioner "local-exec" {
    command = "docker run -d --name clusterlab-web2 --hostname web2 --network clusterlab-net --ip 10.77.0.12 --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined --security-opt apparmor=unconfined --device-cgroup-rule='a *:* rwm' --tmpfs /run --tmpfs /tmp -v /sys/fs/cgroup:/sys/fs/cgroup:rw -v clusterlab-web2-docker:/var/lib/docker --label clusterlab.cluster=clusterlab -e SSH_USER=clusterlab -e SSH_PUBKEY=\"${trimspace(var.ssh_public_key)}\" clusterlab/vm:latest"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "docker rm -f ${self.triggers_replace.container}"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "docker volume rm ${self.triggers_replace.volume}"
  }

  depends_on = [terraform_data.network]
}

resource "terraform_data" "vm_redis" {
  triggers_replace = {
    container  = "clusterlab-redis"
    volume     = "clusterlab-redis-docker"
    ip         = "10.77.0.20"
    image      = "clusterlab/vm:latest"
    public_key = sha256(trimspace(var.ssh_public_key))
  }

  provisioner "local-exec" {
    command = "docker run -d --name clusterlab-redis --hostname redis --network clusterlab-net --ip 10.77.0.20 --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined --security-opt apparmor=unconfined --device-cgroup-rule='a *:* rwm' --tmpfs /run --tmpfs /tmp -v /sys/fs/cgroup:/sys/fs/cgroup:rw -v clusterlab-redis-docker:/var/lib/docker --label clusterlab.cluster=clusterlab -e SSH_USER=clusterlab -e SSH_PUBKEY=\"${trimspace(var.ssh_public_key)}\" clusterlab/vm:latest"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "docker rm -f ${self.triggers_replace.container}"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "docker volume rm ${self.triggers_replace.volume}"
  }

  depends_on = [terraform_data.network]
}

resource "terraform_data" "vm_postgres" {
  triggers_replace = {
    container  = "clusterlab-postgres"
    volume     = "clusterlab-postgres-docker"
    ip         = "10.77.0.21"
    image      = "clusterlab/vm:latest"
    public_key = sha256(trimspace(var.ssh_public_key))
  }

  provisioner "local-exec" {
    command = "docker run -d --name clusterlab-postgres --hostname postgres --network clusterlab-net --ip 10.77.0.21 --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined --security-opt apparmor=unconfined --device-cgroup-rule='a *:* rwm' --tmpfs /run --tmpfs /tmp -v /sys/fs/cgroup:/sys/fs/cgroup:rw -v clusterlab-postgres-docker:/var/lib/docker --label clusterlab.cluster=clusterlab -e SSH_USER=clusterlab -e SSH_PUBKEY=\"${trimspace(var.ssh_public_key)}\" clusterlab/vm:latest"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "docker rm -f ${self.triggers_replace.container}"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "docker volume rm ${self.triggers_replace.volume}"
  }

  depends_on = [terraform_data.network]
}

resource "terraform_data" "vm_tester" {
  triggers_replace = {
    container  = "clusterlab-tester"
    volume     = "clusterlab-tester-docker"
    ip         = "10.77.0.30"
    image      = "clusterlab/vm:latest"
    public_key = sha256(trimspace(var.ssh_public_key))
  }

  provisioner "local-exec" {
    command = "docker run -d --name clusterlab-tester --hostname tester --network clusterlab-net --ip 10.77.0.30 --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined --security-opt apparmor=unconfined --device-cgroup-rule='a *:* rwm' --tmpfs /run --tmpfs /tmp -v /sys/fs/cgroup:/sys/fs/cgroup:rw -v clusterlab-tester-docker:/var/lib/docker --label clusterlab.cluster=clusterlab -e SSH_USER=clusterlab -e SSH_PUBKEY=\"${trimspace(var.ssh_public_key)}\" clusterlab/vm:latest"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "docker rm -f ${self.triggers_replace.container}"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "docker volume rm ${self.triggers_replace.volume}"
  }

  depends_on = [terraform_data.network]
}
