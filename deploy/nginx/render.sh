#!/bin/sh
# Render apiclub's nginx configuration from the environment into CONF_DIR:
#   CONF_DIR/nginx.conf, apiclub-proxy.conf, apiclub-errors.conf, sites/<domain>.conf
#   CONF_DIR/cert-files   (the certificate and key files nginx reads, for the reload watcher)
# The nginx container's entrypoint runs it at every start and tests/deploy run the same script,
# so the tests check the configuration that ships. Every value lands in nginx's configuration
# text, so each is checked against a strict character set first: a stray `;` or `}` in .env
# must not become a directive.
#
# Environment (defaults in brackets; .env.example documents them):
#   APICLUB_DOMAINS            comma-separated names, one server block each (required)
#   APICLUB_PUBLIC_HTTPS_PORT  port named in redirects [443]
#   APICLUB_MAX_BODY_SIZE      largest request body in bytes, as the API's [1048576]
#   NGINX_HTTPS_LISTEN         nginx `listen` for HTTPS: PORT or ADDRESS:PORT [443]
#   NGINX_HTTP_LISTEN          nginx `listen` for HTTP [80]
#   NGINX_UPSTREAM             the API's plain-HTTP address, or several (replicas) separated by
#                              commas: HOST:PORT[,HOST:PORT...] [api-behind-nginx:8080]
#   NGINX_CERT_FILE            certificate chain; `{domain}` is replaced by each name
#                              [/data/certs/live/{domain}/fullchain.pem]
#   NGINX_KEY_FILE             its private key [/data/certs/live/{domain}/privkey.pem]
#   NGINX_USER                 user of the worker processes when started as root [www-data]
#   NGINX_TEMPLATE_DIR         where the *.template files are [this script's folder]
#   APICLUB_HSTS               Strict-Transport-Security, as the API decides it in direct mode:
#                              auto (public names, once the ACME terms are agreed), on, off [auto]
#   APICLUB_HSTS_MAX_AGE       its max-age in seconds [31536000]
#   APICLUB_ACME_AGREE_TOS     set (1, true, yes, on) when the API orders from ACME: `auto` needs it
set -eu

fail() {
    printf 'apiclub-nginx: error: %s\n' "$*" >&2
    exit 1
}

# check NAME VALUE ALLOWED-GLOB-CLASS WHAT: refuse empty values and any character outside the class.
check() {
    case $2 in
        '' | *[!$3]*) fail "$1='$2' is not $4" ;;
    esac
}

[ $# -eq 1 ] || fail "usage: render.sh CONF_DIR"
out=$1
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
templates=${NGINX_TEMPLATE_DIR:-$here}

APICLUB_DOMAINS=${APICLUB_DOMAINS:-}
APICLUB_PUBLIC_HTTPS_PORT=${APICLUB_PUBLIC_HTTPS_PORT:-443}
APICLUB_MAX_BODY_SIZE=${APICLUB_MAX_BODY_SIZE:-1048576}
NGINX_HTTPS_LISTEN=${NGINX_HTTPS_LISTEN:-443}
NGINX_HTTP_LISTEN=${NGINX_HTTP_LISTEN:-80}
NGINX_UPSTREAM=${NGINX_UPSTREAM:-api-behind-nginx:8080}
# The API keeps what it serves for each name here (stand-ins included), whatever the issuer.
# (Defaults in variables: a `}` inside ${VAR:-...} would end the expansion.)
default_cert='/data/certs/live/{domain}/fullchain.pem'
default_key='/data/certs/live/{domain}/privkey.pem'
NGINX_CERT_FILE=${NGINX_CERT_FILE:-$default_cert}
NGINX_KEY_FILE=${NGINX_KEY_FILE:-$default_key}
NGINX_USER=${NGINX_USER:-www-data}
APICLUB_HSTS=$(printf '%s' "${APICLUB_HSTS:-auto}" | tr '[:upper:]' '[:lower:]')
APICLUB_HSTS_MAX_AGE=${APICLUB_HSTS_MAX_AGE:-31536000}
APICLUB_ACME_AGREE_TOS=$(printf '%s' "${APICLUB_ACME_AGREE_TOS:-}" | tr '[:upper:]' '[:lower:]')

check APICLUB_PUBLIC_HTTPS_PORT "$APICLUB_PUBLIC_HTTPS_PORT" 0-9 "a port (1-65535)"
check APICLUB_MAX_BODY_SIZE "$APICLUB_MAX_BODY_SIZE" 0-9 "a number of bytes"
check NGINX_HTTPS_LISTEN "$NGINX_HTTPS_LISTEN" ']0-9a-zA-Z.:[' "an nginx listen address (443 or 127.0.0.1:8443)"
check NGINX_HTTP_LISTEN "$NGINX_HTTP_LISTEN" ']0-9a-zA-Z.:[' "an nginx listen address (80 or 127.0.0.1:8080)"
check NGINX_CERT_FILE "$NGINX_CERT_FILE" '0-9a-zA-Z._/{}-' "a file path without spaces"
check NGINX_KEY_FILE "$NGINX_KEY_FILE" '0-9a-zA-Z._/{}-' "a file path without spaces"
check NGINX_USER "$NGINX_USER" '0-9a-z_-' "a user name"
check APICLUB_HSTS_MAX_AGE "$APICLUB_HSTS_MAX_AGE" 0-9 "a number of seconds (31536000 is a year)"
case $APICLUB_HSTS in
    auto | on | off) ;;
    *) fail "APICLUB_HSTS='$APICLUB_HSTS' is not one of auto, on, off" ;;
esac
case $APICLUB_ACME_AGREE_TOS in
    1 | true | yes | on) acme_agreed=1 ;;
    *) acme_agreed='' ;;
esac

# Whether DOMAIN gets HSTS: the API's rule (server/hsts.py, tls/names.py). `auto`: names a
# public CA certifies, i.e. not IP addresses, single labels, localhost or a reserved suffix.
hsts_for() {
    case $APICLUB_HSTS in
        off) return 1 ;;
        on) return 0 ;;
    esac
    [ -n "$acme_agreed" ] || return 1
    case $1 in
        *[!0-9.]*) ;;
        *) return 1 ;; # an IPv4 address
    esac
    case $1 in
        *.*) ;;
        *) return 1 ;; # one label
    esac
    for suffix in localhost test invalid example local home.arpa internal; do
        case $1 in
            "$suffix" | *".$suffix") return 1 ;;
        esac
    done
    return 0
}

# One `server` line per replica in the upstream block; a name that resolves to several
# addresses (a compose service with replicas) is several servers too (nginx resolves it at start).
UPSTREAM_SERVERS=''
old_ifs=$IFS
IFS=,
set -f
for server in $NGINX_UPSTREAM; do
    check NGINX_UPSTREAM "$server" ']0-9a-zA-Z.:[_-' "a HOST:PORT list (api-behind-nginx:8080 or 127.0.0.1:8081,127.0.0.1:8082)"
    UPSTREAM_SERVERS="$UPSTREAM_SERVERS${UPSTREAM_SERVERS:+
        }server $server;"
done
set +f
IFS=$old_ifs

# The API names port 443 nowhere in its redirects (it is https's default), so neither do we.
if [ "$APICLUB_PUBLIC_HTTPS_PORT" = 443 ]; then
    HTTPS_PORT_SUFFIX=''
else
    HTTPS_PORT_SUFFIX=":$APICLUB_PUBLIC_HTTPS_PORT"
fi

export APICLUB_MAX_BODY_SIZE NGINX_HTTPS_LISTEN NGINX_HTTP_LISTEN UPSTREAM_SERVERS NGINX_USER \
    HTTPS_PORT_SUFFIX
# Only these are substituted: nginx's own $host, $remote_addr, ... stay as they are.
# shellcheck disable=SC2016
variables='${APICLUB_MAX_BODY_SIZE} ${NGINX_HTTPS_LISTEN} ${NGINX_HTTP_LISTEN} ${UPSTREAM_SERVERS}
${NGINX_USER} ${HTTPS_PORT_SUFFIX} ${DOMAIN} ${CERT_FILE} ${KEY_FILE} ${HSTS_HEADER}'

mkdir -p "$out/sites"
rm -f "$out"/sites/*.conf "$out/cert-files"
for name in nginx.conf apiclub-proxy.conf apiclub-errors.conf; do
    envsubst "$variables" <"$templates/$name.template" >"$out/$name"
done

seen=' '
old_ifs=$IFS
IFS=,
set -f
for raw in $APICLUB_DOMAINS; do
    # The API's own normalisation for DNS names (settings.normalize_name): trim, lower case,
    # no trailing dot. IDN names must be given in punycode (xn--...).
    DOMAIN=$(printf '%s' "$raw" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//' | tr '[:upper:]' '[:lower:]')
    DOMAIN=${DOMAIN%.}
    [ -n "$DOMAIN" ] || continue
    check "APICLUB_DOMAINS entry" "$DOMAIN" 'a-z0-9.-' "a DNS name (letters, digits, dots, hyphens)"
    case $seen in *" $DOMAIN "*) continue ;; esac
    seen="$seen$DOMAIN "
    CERT_FILE=$(printf '%s' "$NGINX_CERT_FILE" | sed "s/{domain}/$DOMAIN/g")
    KEY_FILE=$(printf '%s' "$NGINX_KEY_FILE" | sed "s/{domain}/$DOMAIN/g")
    if hsts_for "$DOMAIN"; then
        # `always`: nginx's own error answers (502 ...) carry it too, as the API's do.
        HSTS_HEADER="add_header Strict-Transport-Security \"max-age=$APICLUB_HSTS_MAX_AGE\" always;"
    else
        HSTS_HEADER="# no Strict-Transport-Security for $DOMAIN (APICLUB_HSTS=$APICLUB_HSTS)"
    fi
    export DOMAIN CERT_FILE KEY_FILE HSTS_HEADER
    envsubst "$variables" <"$templates/site.conf.template" >"$out/sites/$DOMAIN.conf"
    printf '%s\n%s\n' "$CERT_FILE" "$KEY_FILE" >>"$out/cert-files"
done
set +f
IFS=$old_ifs

[ "$seen" != ' ' ] || fail "APICLUB_DOMAINS is empty: name the domains nginx serves, e.g. apiclub.com,api.apiclub.com"
sort -u -o "$out/cert-files" "$out/cert-files"
