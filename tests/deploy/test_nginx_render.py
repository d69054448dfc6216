"""deploy/nginx/render.sh and `entrypoint.sh check`: the configuration nginx gets, and nginx -t."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from apiclub.tls import CertManager
from tests.deploy.helpers import DOMAINS, NGINX_DIR, clean_env, need_nginx, nginx_env, render


def rendered(tmp_path: Path, **values: str) -> dict[str, str]:
    result = render(tmp_path / "conf", **values)
    assert result.returncode == 0, result.stderr
    conf = tmp_path / "conf"
    return {
        str(path.relative_to(conf)): path.read_text() for path in conf.rglob("*") if path.is_file()
    }


def test_one_server_pair_per_domain_with_its_own_names(tmp_path: Path) -> None:
    files = rendered(tmp_path, APICLUB_DOMAINS=" apiclub.com, API.apiclub.com., apiclub.com")
    assert sorted(files) == [
        "apiclub-errors.conf",
        "apiclub-proxy.conf",
        "cert-files",
        "nginx.conf",
        "sites/api.apiclub.com.conf",
        "sites/apiclub.com.conf",
    ]
    for name in DOMAINS:
        site = files[f"sites/{name}.conf"]
        assert re.findall(r"server_name (\S+);", site) == [name, name]
        assert "listen 443 ssl http2;" in site
        assert "listen 80;" in site
        assert f"return 301 https://{name}$request_uri;" in site
        assert "location ^~ /.well-known/acme-challenge/ {" in site
    # Nothing left unsubstituted, and nginx's own variables untouched.
    for text in files.values():
        assert not re.search(r"\$\{(?!NAME\})", text), text
    assert "$proxy_add_x_forwarded_for" in files["apiclub-proxy.conf"]


def test_defaults_match_the_api_and_compose(tmp_path: Path) -> None:
    files = rendered(tmp_path, APICLUB_DOMAINS="apiclub.com")
    main = files["nginx.conf"]
    assert "client_max_body_size 1048576;" in main  # the API's APICLUB_MAX_BODY_SIZE default
    assert "server api-behind-nginx:8080;" in main
    assert "keepalive 32;" in main
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in main
    assert "ssl_reject_handshake on;" in main
    assert "return 444;" in main
    assert files["cert-files"].split() == [
        "/data/certs/live/apiclub.com/fullchain.pem",
        "/data/certs/live/apiclub.com/privkey.pem",
    ]


def test_per_domain_certificate_paths_and_a_public_port(tmp_path: Path) -> None:
    files = rendered(
        tmp_path,
        APICLUB_DOMAINS="apiclub.com,api.apiclub.com",
        NGINX_CERT_FILE="/data/certs/live/{domain}/fullchain.pem",
        NGINX_KEY_FILE="/data/certs/live/{domain}/privkey.pem",
        APICLUB_PUBLIC_HTTPS_PORT="8443",
    )
    site = files["sites/api.apiclub.com.conf"]
    assert "ssl_certificate /data/certs/live/api.apiclub.com/fullchain.pem;" in site
    assert "ssl_certificate_key /data/certs/live/api.apiclub.com/privkey.pem;" in site
    assert "return 301 https://api.apiclub.com:8443$request_uri;" in site
    assert len(files["cert-files"].split()) == 4


def test_several_replicas_are_one_upstream_server_each(tmp_path: Path) -> None:
    files = rendered(
        tmp_path, APICLUB_DOMAINS="apiclub.com", NGINX_UPSTREAM="api-1:8080,10.0.0.7:8080,[::1]:81"
    )
    upstream = re.search(r"upstream apiclub_api \{(.*?)\}", files["nginx.conf"], re.S)
    assert upstream is not None
    servers = re.findall(r"^\s*server (\S+);", upstream.group(1), re.M)
    assert servers == ["api-1:8080", "10.0.0.7:8080", "[::1]:81"]
    assert "keepalive 32;" in upstream.group(1)


def test_failed_idempotent_requests_go_to_the_next_replica_and_writes_are_never_resent(
    tmp_path: Path,
) -> None:
    proxy = rendered(tmp_path, APICLUB_DOMAINS="apiclub.com")["apiclub-proxy.conf"]
    directives = [line for line in proxy.splitlines() if not line.lstrip().startswith("#")]
    assert "proxy_next_upstream error timeout http_502 http_503;" in directives
    assert "proxy_next_upstream_tries 3;" in directives
    # Twin: `non_idempotent` would let nginx send a POST that reached one replica to another.
    assert not any("non_idempotent" in line for line in directives)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("APICLUB_DOMAINS", "", "APICLUB_DOMAINS is empty"),
        ("APICLUB_DOMAINS", " , ", "APICLUB_DOMAINS is empty"),
        ("APICLUB_DOMAINS", "apiclub.com;evil", "is not a DNS name"),
        ("APICLUB_DOMAINS", "ex ample.com", "is not a DNS name"),
        ("NGINX_UPSTREAM", "api:8080; return 200", "is not a HOST:PORT list"),
        ("NGINX_UPSTREAM", "api-1:8080,api-2:8080;}", "is not a HOST:PORT list"),
        ("NGINX_UPSTREAM", "api-1:8080,,api-2:8080", "is not a HOST:PORT list"),
        ("NGINX_UPSTREAM", ",", "is not a HOST:PORT list"),
        ("NGINX_HTTPS_LISTEN", "443 ssl; include /etc/passwd", "is not an nginx listen address"),
        ("NGINX_CERT_FILE", "/data/x y.pem", "is not a file path without spaces"),
        ("APICLUB_MAX_BODY_SIZE", "1m", "is not a number of bytes"),
        ("APICLUB_PUBLIC_HTTPS_PORT", "443}", "is not a port"),
    ],
)
def test_values_that_would_inject_configuration_are_refused(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    values = {"APICLUB_DOMAINS": "apiclub.com", key: value}
    result = render(tmp_path / "conf", **values)
    assert result.returncode == 1
    assert result.stderr.startswith("apiclub-nginx: error: ")
    assert message in result.stderr


def check(
    tmp_path: Path, certs: CertManager, upstream: int | list[int] = 8080
) -> subprocess.CompletedProcess[str]:
    need_nginx()
    env = nginx_env(
        certs.settings.data_dir, upstream, https_port=8443, http_port=8081, prefix=tmp_path / "p"
    )
    return subprocess.run(
        [str(NGINX_DIR / "entrypoint.sh"), "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_nginx_accepts_the_rendered_configuration(tmp_path: Path, certs: CertManager) -> None:
    result = check(tmp_path, certs)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "[warn]" in line]
    if os.geteuid() != 0:  # nginx ignores `user` unless started as root, and says so
        warnings = [line for line in warnings if '"user" directive makes sense only' not in line]
    assert warnings == []


def test_nginx_accepts_several_replicas(tmp_path: Path, certs: CertManager) -> None:
    result = check(tmp_path, certs, [8082, 8083, 8084])
    assert result.returncode == 0, result.stderr
    conf = (tmp_path / "p/conf/nginx.conf").read_text()
    assert conf.count("server 127.0.0.1:808") == 3


def test_nginx_refuses_to_start_without_the_certificate(tmp_path: Path, certs: CertManager) -> None:
    (certs.settings.data_dir / "certs/local/privkey.pem").unlink()
    result = check(tmp_path, certs)
    assert result.returncode == 1
    assert "privkey.pem" in result.stderr


def test_entrypoint_gives_up_when_the_api_never_writes_certificates(tmp_path: Path) -> None:
    need_nginx()
    env = clean_env(
        APICLUB_DOMAINS="apiclub.com",
        NGINX_PREFIX=str(tmp_path / "p"),
        NGINX_CERT_FILE=str(tmp_path / "missing/fullchain.pem"),
        NGINX_KEY_FILE=str(tmp_path / "missing/privkey.pem"),
        NGINX_CERT_WAIT="1",
    )
    result = subprocess.run(
        [str(NGINX_DIR / "entrypoint.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "error: no certificates after 1s" in result.stderr
    assert "APICLUB_MANAGE_CERTS=1" in result.stderr


def hsts_lines(files: dict[str, str], name: str) -> list[str]:
    return re.findall(r"add_header Strict-Transport-Security .*;", files[f"sites/{name}.conf"])


def test_hsts_in_auto_is_for_public_names_once_acme_is_agreed(tmp_path: Path) -> None:
    # Issue 14: the nginx profile never sent HSTS; direct mode sends it for public ACME names.
    names = "apiclub.com,localhost,api.test,intranet,10.0.0.7,box.internal"
    files = rendered(tmp_path, APICLUB_DOMAINS=names, APICLUB_ACME_AGREE_TOS="1")
    assert hsts_lines(files, "apiclub.com") == [
        'add_header Strict-Transport-Security "max-age=31536000" always;'
    ]
    for local in ("localhost", "api.test", "intranet", "10.0.0.7", "box.internal"):
        assert hsts_lines(files, local) == [], local
    # Only in the HTTPS server: never on port 80 (RFC 6797 7.2).
    site = files["sites/apiclub.com.conf"]
    assert site.index("Strict-Transport-Security") < site.index("listen 80")


def test_hsts_in_auto_waits_for_the_acme_terms_as_the_api_does(tmp_path: Path) -> None:
    files = rendered(tmp_path, APICLUB_DOMAINS="apiclub.com")
    assert hsts_lines(files, "apiclub.com") == []


def test_hsts_on_off_and_max_age(tmp_path: Path) -> None:
    on = rendered(
        tmp_path / "on", APICLUB_DOMAINS="localhost", APICLUB_HSTS="on", APICLUB_HSTS_MAX_AGE="60"
    )
    assert hsts_lines(on, "localhost") == [
        'add_header Strict-Transport-Security "max-age=60" always;'
    ]
    off = rendered(
        tmp_path / "off",
        APICLUB_DOMAINS="apiclub.com",
        APICLUB_HSTS="off",
        APICLUB_ACME_AGREE_TOS="1",
    )
    assert hsts_lines(off, "apiclub.com") == []


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("APICLUB_HSTS", "maybe", "APICLUB_HSTS='maybe' is not one of auto, on, off"),
        ("APICLUB_HSTS_MAX_AGE", "1; }", "is not a number of seconds"),
    ],
)
def test_bad_hsts_values_are_refused(tmp_path: Path, key: str, value: str, message: str) -> None:
    result = render(tmp_path / "conf", APICLUB_DOMAINS="apiclub.com", **{key: value})
    assert result.returncode == 1
    assert message in result.stderr
