#!/usr/bin/env bash
# pebble 2.10 (ARI, profiles, IP identifiers, EAB) from Debian sid, beside Debian 12's 2.4
# (tests/pebble/test_ari.py and friends). A private apt configuration fetches the one .deb
# without touching the system's sources; it depends only on libc6. Idempotent; as root.
# `make test-deps` (and so .ci/run) runs it; tests find it in /opt/pebble-2.10/usr/bin or in
# the folder APICLUB_PEBBLE_210 names.
set -euo pipefail
PEBBLE_210=/opt/pebble-2.10
if [ ! -x "$PEBBLE_210/usr/bin/pebble" ] || [ ! -x "$PEBBLE_210/usr/bin/pebble-challtestsrv" ]; then
    apt_dir=/var/cache/apiclub-ci/sid-apt
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/deb"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main" \
        >"$apt_dir/sources.list"
    apt_sid=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=-
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
    apt-get "${apt_sid[@]}" update -qq
    (cd "$apt_dir/deb" && apt-get "${apt_sid[@]}" download pebble=2.10.0+ds1-2)
    rm -rf "$PEBBLE_210.tmp" && dpkg-deb -x "$apt_dir"/deb/pebble_2.10.0+ds1-2_*.deb "$PEBBLE_210.tmp"
    rm -rf "$PEBBLE_210" && mv "$PEBBLE_210.tmp" "$PEBBLE_210"
fi
echo "== pebble 2.10 in $PEBBLE_210 ($("$PEBBLE_210/usr/bin/pebble" -version 2>&1 | head -1))"
