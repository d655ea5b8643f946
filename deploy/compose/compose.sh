#!/usr/bin/env bash
# compose.sh ARGS...: Docker Compose on deploy/compose/compose.yaml, with whichever Compose is here
# (the `docker compose` plugin, else the standalone `docker-compose`, e.g. Debian's package).
# The project name is COMPOSE_PROJECT_NAME (default cancelguard).
set -euo pipefail
file=$(dirname "$0")/compose.yaml
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-cancelguard}
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose -f "$file")
elif command -v docker-compose >/dev/null; then
    compose=(docker-compose -f "$file")
else
    echo "compose.sh: neither \`docker compose\` nor \`docker-compose\` is installed" >&2
    exit 1
fi
# Nothing is pulled: the standalone docker-compose pulls a missing image whatever pull_policy says, so
# `up` first checks that every image is here.
if [[ ${1:-} == up ]]; then
    for image in $("${compose[@]}" config | sed -n 's/^ *image: *//p' | sort -u); do
        docker image inspect "$image" >/dev/null 2>&1 || {
            echo "compose.sh: image $image is not here, and Compose must not pull it: \`make images\` builds" \
                "cancelguard's offline (see the README), or \`docker pull $image\` where a registry is reachable" >&2
            exit 1
        }
    done
fi
exec "${compose[@]}" "$@"
