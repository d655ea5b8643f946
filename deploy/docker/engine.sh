#!/usr/bin/env bash
# A Docker engine for the image builds and the container tests (make engine / engine-stop).
#
#   engine.sh start   use the engine DOCKER_HOST (or the default socket) names when it answers; else, as
#                     root on Debian, install Debian's docker.io if needed and start dockerd on a socket
#                     of our own (so other test runs on this machine do not see it); else exit 3 (skip)
#   engine.sh stop    stop the dockerd that `start` started, if any (images stay in its data root)
#   engine.sh ours    exit 0 if that dockerd runs
#
# Our dockerd listens on $ENGINE_DIR/docker.sock; the Makefile points DOCKER_HOST at it while it exists.
set -euo pipefail

dir=${ENGINE_DIR:?set ENGINE_DIR (the Makefile does)}
sock=$dir/docker.sock
pidfile=$dir/dockerd.pid
log=$dir/dockerd.log

answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

ours_running() { [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

start() {
    if ours_running && DOCKER_HOST=unix://$sock answers; then
        echo "docker engine: ours, at unix://$sock"
        return 0
    fi
    rm -f "$sock" # left by a dockerd that is gone
    [[ ${DOCKER_HOST:-} == "unix://$sock" ]] && unset DOCKER_HOST
    if answers; then
        echo "docker engine: the one at ${DOCKER_HOST:-the default socket}"
        return 0
    fi
    if [[ $(id -u) != 0 ]] || ! grep -qs '^ID=debian' /etc/os-release; then
        echo "docker engine: none answers, and only root on Debian installs and starts one here" >&2
        return 3
    fi
    local packages=()
    command -v dockerd >/dev/null || packages+=(docker.io)
    docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || packages+=(docker-compose)
    if ((${#packages[@]})); then
        echo "docker engine: installing Debian's ${packages[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    fi
    mkdir -p "$dir"
    rm -f "$sock"
    # setsid: the engine outlives this make step; `engine.sh stop` ends it by its pid
    setsid dockerd --host "unix://$sock" --pidfile "$pidfile" >"$log" 2>&1 </dev/null &
    local deadline=$((SECONDS + 60))
    until DOCKER_HOST=unix://$sock answers; do
        if ((SECONDS > deadline)) || ! kill -0 $! 2>/dev/null; then
            echo "docker engine: dockerd did not answer within 60 s; the end of $log:" >&2
            tail -n 20 "$log" >&2
            return 1
        fi
        sleep 0.5
    done
    echo "docker engine: started dockerd (pid $(cat "$pidfile")) at unix://$sock"
}

stop() {
    ours_running || return 0
    local pid deadline=$((SECONDS + 30))
    pid=$(cat "$pidfile")
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS > deadline)) && { kill -9 "$pid"; break; }
        sleep 0.2
    done
    rm -f "$sock"
    echo "docker engine: stopped dockerd (pid $pid)"
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    ours) ours_running ;;
    *) echo "usage: $0 start|stop|ours" >&2; exit 2 ;;
esac
