#!/usr/bin/env bash
# compose.sh ARGS...: Docker Compose on deploy/compose/compose.yaml, with whichever Compose is here
# (the `docker compose` plugin, else the standalone `docker-compose`, e.g. Debian's package).
# The project name is COMPOSE_PROJECT_NAME (default cancelguard).
set -euo pipefail
file=$(dirname "$0")/compose.yaml
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-cancelguard}
if docker compose version >/dev/null 2>&1; then
    exec docker compose -f "$file" "$@"
elif command -v docker-compose >/dev/null; then
    exec docker-compose -f "$file" "$@"
fi
echo "compose.sh: neither \`docker compose\` nor \`docker-compose\` is installed" >&2
exit 1
