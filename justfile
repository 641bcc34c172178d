# clusterlab's entry points. `just` lists them.

provisioner := "./scripts/provisioner.sh"

default:
    @just --list

# Bring the whole cluster up from cluster.yaml (installs what the host lacks first).
up:
    ./scripts/up.sh

# Run every test against real services (installs and starts them first).
test:
    ./scripts/test.sh

# Remove the cluster's hosts (asks first; add --yes, and --delete-data to delete the data).
destroy *args:
    {{provisioner}} destroy {{args}}

# Write a pg_dump of the links database (default backups/<cluster>-<time>.dump).
backup *args:
    {{provisioner}} backup {{args}}

# Load a dump from `just backup` into the cluster's database.
restore file *args:
    {{provisioner}} restore {{file}} {{args}}

# Check cluster.yaml; every error with its line:column.
validate:
    {{provisioner}} validate

# Write terraform/, compose/ and the nginx config from cluster.yaml.
render:
    {{provisioner}} render

# Fail (with a diff) when the rendered files differ from what cluster.yaml renders.
render-check:
    {{provisioner}} render --check

# Per host: SSH reachable, containers with image, state and health.
status:
    {{provisioner}} status

# Roll the web app out again, one web host at a time, under the deploy lock (-m MESSAGE says
# why; --version VERSION deploys a kept version instead of a new build). The arguments reach
# the provisioner as they are ("$@"), never as shell text.
[positional-arguments]
deploy *args:
    {{provisioner}} deploy "$@"

# Without VERSION: the version deployed before the running one; -m MESSAGE says why.
# Back to an earlier version, one web host at a time, under the deploy lock: `just rollback [VERSION]`.
[positional-arguments]
rollback *args:
    {{provisioner}} rollback "$@"

# The web app's versions each web host keeps, the one it runs, and where rollback goes.
versions:
    {{provisioner}} versions

# The deploy lock on the load balancer host: `just lock status`, `just lock release`.
[positional-arguments]
lock action:
    {{provisioner}} lock "$1"

# The last lines of the audit log (--lines N).
[positional-arguments]
audit *args:
    {{provisioner}} audit "$@"

# A host's container logs, e.g. `just logs web1` or `just logs web1 web`.
logs host *service:
    {{provisioner}} logs {{host}} {{service}}

# An interactive shell on a host.
ssh host:
    {{provisioner}} ssh {{host}}

# Run a k6 script from k6/ on the tester host and judge the result.
loadtest *args:
    {{provisioner}} loadtest {{args}}

# The limiter's keys in Redis per client and policy, e.g. `just limiter --watch`,
# `just limiter reset --client 10.77.0.30`.
limiter *args:
    {{provisioner}} limiter {{args}}

# A live view of every web host's requests, 429s and latency and of Redis; q quits.
top:
    {{provisioner}} top
