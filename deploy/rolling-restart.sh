#!/bin/sh
# Restart the API replicas of a running compose deployment one at a time, each back healthy
# before the next goes down, so nginx always has a replica to send requests to (profile scale).
#
#   deploy/rolling-restart.sh [SERVICE...]     SERVICE [api-behind-nginx]
#
# Several services are restarted as one set of replicas: a deployment whose replicas are
# services of their own (tests/deploy/compose.e2e.yaml, one host port each) names them all.
#
# Each replica gets SIGTERM and finishes its in-flight requests (podman restart --time, as
# compose's stop_grace_period); nginx passes the requests it refuses meanwhile to the others
# (proxy_next_upstream). The image's health check (GET / from inside) decides "back".
#
# Environment:
#   PODMAN                   podman binary [podman]
#   COMPOSE_PROJECT_NAME     the compose project [apiclub]
#   ROLLING_STOP_TIMEOUT     seconds a replica gets to finish before SIGKILL [30]
#   ROLLING_HEALTH_TIMEOUT   seconds to wait for a restarted replica to be healthy [120]
#   ROLLING_SETTLE           seconds to wait after it is healthy [11]: nginx skips a replica
#                            for fail_timeout (10 s) after it refused a connection; the next
#                            one must not go down while the last one is still skipped
set -eu

log() {
    printf 'rolling-restart: %s\n' "$*" >&2
}

fail() {
    log "error: $*"
    exit 1
}

[ "$#" -gt 0 ] || set -- api-behind-nginx
services=$*
podman=${PODMAN:-podman}
project=${COMPOSE_PROJECT_NAME:-apiclub}
stop_timeout=${ROLLING_STOP_TIMEOUT:-30}
health_timeout=${ROLLING_HEALTH_TIMEOUT:-120}
settle=${ROLLING_SETTLE:-11}
for value in "$stop_timeout" "$health_timeout" "$settle"; do
    case $value in '' | *[!0-9]*) fail "timeouts are whole seconds, got '$value'" ;; esac
done

replicas=
for service in "$@"; do
    found=$("$podman" ps \
        --filter "label=io.podman.compose.project=$project" \
        --filter "label=io.podman.compose.service=$service" \
        --format '{{.Names}}') || fail "'$podman ps' failed: is podman installed, and are you the user that runs the containers?"
    replicas=$(printf '%s\n%s\n' "$replicas" "$found")
done
replicas=$(printf '%s\n' "$replicas" | grep . | sort || true)
count=$(printf '%s\n' "$replicas" | grep -c . || true)
if [ "$count" -lt 2 ]; then
    fail "$count running replica(s) of $services in project $project: a rolling restart needs 2 or more (API_REPLICAS in .env), or requests fail while the only one restarts"
fi

wait_healthy() {
    waited=0
    until "$podman" healthcheck run "$1" >/dev/null 2>&1; do
        if [ "$waited" -ge "$health_timeout" ]; then
            fail "$1 is not healthy ${health_timeout}s after its restart; the other replicas were left alone (see: $podman logs $1)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

log "restarting $count replicas of $services one at a time"
for name in $replicas; do
    log "$name: restarting (up to ${stop_timeout}s for in-flight requests)"
    "$podman" restart --time "$stop_timeout" "$name" >/dev/null
    wait_healthy "$name"
    log "$name: healthy; waiting ${settle}s before the next"
    sleep "$settle"
done
log "done: $count replicas restarted"
