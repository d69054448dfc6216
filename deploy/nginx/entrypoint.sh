#!/bin/sh
# The nginx container's entrypoint (and what tests/deploy start): render the configuration
# from the environment, wait for the API to have written the certificates, check the result
# with `nginx -t`, then run nginx in the foreground as this process (so it gets the stop signal)
# with a small watcher beside it that reloads nginx when a certificate file changes.
#
#   entrypoint.sh          serve
#   entrypoint.sh check    render and `nginx -t`, then exit (no waiting for certificates)
#
# Environment, besides render.sh's:
#   NGINX_PREFIX                  rendered config, pid and temp files [/var/lib/apiclub-nginx]
#   NGINX_CERT_WAIT               seconds to wait for the certificate files at start [120]
#   NGINX_CERT_CHECK_INTERVAL     seconds between checks for renewed certificates [60]
set -eu

log() {
    printf 'apiclub-nginx: %s\n' "$*" >&2
}

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
prefix=${NGINX_PREFIX:-/var/lib/apiclub-nginx}
conf=$prefix/conf
wait_seconds=${NGINX_CERT_WAIT:-120}
interval=${NGINX_CERT_CHECK_INTERVAL:-60}

run_nginx() {
    # -e stderr: nginx opens its compiled-in error log before reading the configuration.
    nginx -p "$prefix/" -c "$conf/nginx.conf" -e stderr "$@"
}

# A checksum of every certificate and key file: it changes when any of them is replaced, even
# within the same second (an mtime could not tell), and POSIX cksum needs no extra tool.
cert_stamp() {
    # Word splitting is wanted: render.sh allows no spaces in these paths.
    # shellcheck disable=SC2046
    cat $(cat "$conf/cert-files") 2>/dev/null | cksum
}

certs_present() {
    while IFS= read -r file; do
        [ -r "$file" ] || return 1
    done <"$conf/cert-files"
}

# Reload on change. SIGHUP makes the master start workers with the new certificates while the
# old workers finish their connections: no connection is dropped (nginx docs, "Controlling
# nginx"). The API writes the key, then the chain; between the two they do not match, so nginx
# -t fails and the next round retries.
watch_certs() {
    master=$1
    stamp=$(cert_stamp)
    while sleep "$interval"; do
        kill -0 "$master" 2>/dev/null || return 0
        current=$(cert_stamp)
        [ "$current" != "$stamp" ] || continue
        if run_nginx -t -q; then
            log "certificate files changed: reloading nginx"
            kill -HUP "$master"
            stamp=$current
        else
            log "certificate files changed but nginx -t fails; still serving the old ones, retrying in ${interval}s"
        fi
    done
}

mkdir -p "$prefix/logs" "$prefix/temp"
"$here/render.sh" "$conf"

if [ "${1:-serve}" = check ]; then
    exec nginx -p "$prefix/" -c "$conf/nginx.conf" -e stderr -t
fi

waited=0
until certs_present; do
    if [ "$waited" -ge "$wait_seconds" ]; then
        log "error: no certificates after ${wait_seconds}s: $(tr '\n' ' ' <"$conf/cert-files")"
        log "the API writes them (APICLUB_MANAGE_CERTS=1); is it running with the same /data volume?"
        exit 1
    fi
    [ "$waited" -gt 0 ] || log "waiting for the API to write the certificates"
    sleep 1
    waited=$((waited + 1))
done

run_nginx -t -q
watch_certs $$ &
sites=''
for file in "$conf"/sites/*.conf; do
    name=${file##*/}
    sites="$sites ${name%.conf}"
done
log "serving$sites"
exec nginx -p "$prefix/" -c "$conf/nginx.conf" -e stderr -g 'daemon off;'
