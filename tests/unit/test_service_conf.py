"""The built-in Service's parameters and nginx.conf text (base_images/service/service/module/
service_params.py and service_conf.py, pure): routes by path prefix, timeouts, body size,
health path, forwarded headers, TLS, and every bad value refused with what and how (issue 15,
"a Service that is part of the product"). nginx itself checks the rendered files in tests/integration/test_service.py.
"""

from __future__ import annotations

import re
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support import ROOT

SERVERS = [{"backend": "api:8080", "server": "10.0.1.5:8080"},
           {"backend": "api:8080", "server": "10.0.1.6:8080"},
           {"backend": "admin:9000", "server": "10.0.1.9:9000"}]


sys.path.insert(0, str(ROOT / "base_images" / "service" / "service" / "module"))
import service_conf as conf  # noqa: E402  (the image's module folder)
import service_params as rules  # noqa: E402


def render(**params) -> str:
    p = rules.settings(params)
    assert rules.problems(p) == []
    return conf.render(p, SERVERS, [], "d1g", "/run/x")


def location(text: str, prefix: str) -> str:
    match = re.search(rf"        location {re.escape(prefix)} {{\n(.*?)\n        }}", text, re.S)
    assert match, f"no location {prefix} in:\n{text}"
    return match.group(1)


def test_the_built_in_defaults_send_every_path_to_the_backends():
    text = render(backends=["api:8080"])
    assert "proxy_pass http://backends_0;" in location(text, "/")
    assert "listen 8080;" in text and "client_max_body_size 1m;" in text
    assert "location = /.dragonball/health" in text


def test_the_defaults_file_of_the_image_matches_the_built_in_defaults():
    import json
    path = ROOT / "base_images" / "service" / "service" / "module" / "defaults.json"
    assert json.loads(path.read_text()) == rules.DEFAULTS


def test_routes_by_prefix_each_to_its_own_upstream_and_the_rest_static():
    text = render(backends=["api:8080"], routes=["/api/", "/admin/=admin:9000"],
                  static_root="/opt/dragon_ball/www")
    assert "proxy_pass http://backends_0;" in location(text, "/api/")
    assert "proxy_pass http://backends_1;" in location(text, "/admin/")
    assert "root /opt/dragon_ball/www;" in location(text, "/")
    upstream_1 = text.split("upstream backends_1 {")[1].split("}")[0]
    assert "10.0.1.9:9000 max_fails=0" in upstream_1 and "10.0.1.5" not in upstream_1
    upstream_0 = text.split("upstream backends_0 {")[1].split("}")[0]
    assert "10.0.1.5:8080 max_fails=1 fail_timeout=5s" in upstream_0


def test_a_path_no_route_takes_answers_a_json_404_without_static_files():
    text = render(backends=["api:8080"], routes=["/api/"])
    assert "return 404" in location(text, "/") and '\\"/api/\\"' not in text
    assert '"routes": ["/api/"]' in location(text, "/")


def test_a_route_with_no_address_answers_the_json_503_naming_the_reason():
    p = rules.settings({"backends": ["api:8080"], "routes": ["/api/", "/x/=gone:1"]})
    text = conf.render(p, SERVERS[:1], ["gone:1"], "d", "/run/x")
    assert "no backend could be resolved: gone:1" in location(text, "/x/")
    assert "return 503" in location(text, "/x/")
    assert "proxy_pass" in location(text, "/api/")


def test_the_backends_get_the_host_with_its_port_and_the_forwarded_headers():
    text = location(render(backends=["api:8080"]), "/")
    assert "proxy_set_header Host $dragonball_host;" in text     # "wiki.site:8080", as sent
    for header in ("X-Forwarded-For $proxy_add_x_forwarded_for", "X-Forwarded-Proto $scheme",
                   "X-Forwarded-Host $dragonball_host", "X-Forwarded-Port $server_port",
                   "X-Real-IP $remote_addr", "Upgrade $http_upgrade"):
        assert f"proxy_set_header {header};" in text
    whole = render(backends=["api:8080"])
    assert '"" $host:$server_port;' in whole and "default $http_host;" in whole


def test_a_header_of_the_author_replaces_a_built_in_one_and_is_sent_as_a_literal():
    text = location(render(backends=["api:8080"],
                           headers=["host: wiki.internal", "X-Team: blue"]), "/")
    assert "proxy_set_header host 'wiki.internal';" in text
    assert "proxy_set_header Host $dragonball_host;" not in text
    assert "proxy_set_header X-Team 'blue';" in text


def test_timeouts_and_body_size_reach_nginx():
    text = render(backends=["api:8080"], connect_timeout="500ms", read_timeout="2m", body_size="0")
    assert "proxy_connect_timeout 500ms;" in text and "proxy_read_timeout 2m;" in text
    assert "client_max_body_size 0;" in text


def test_tls_listens_with_ssl_and_the_files_given():
    p = rules.settings({"backends": ["a:1"], "tls_cert": "-----BEGIN CERTIFICATE-----\nx",
                       "tls_key": "-----BEGIN PRIVATE KEY-----\ny"})
    assert rules.problems(p) == []
    text = conf.render(p, SERVERS, [], "d", "/run/x", ("/run/x/tls/a.crt", "/run/x/tls/a.key"))
    assert "listen 8080 ssl;" in text and "ssl_certificate_key /run/x/tls/a.key;" in text
    assert "TLSv1.2 TLSv1.3" in text and "BEGIN" not in text   # the key never in the config


def test_the_digest_changes_with_the_tls_material_but_does_not_hold_it():
    p = rules.settings({"tls_cert": "-----BEGIN CERTIFICATE-----a", "tls_key": "k"})
    q = dict(p, tls_key="other")
    assert conf.digest_of(p, [], []) != conf.digest_of(q, [], [])


@pytest.mark.parametrize("params, expected", [
    ({"listen_port": 0}, "listen_port must be an integer 1-65535"),
    ({"backends": "api:8080"}, "backends must be a list"),
    ({"backends": ["api 8080"]}, "backends: 'api 8080' is not \"host:port\""),
    ({"routes": ["api/"]}, "the prefix must start with /"),
    ({"routes": ["/a/;return 200 x;"]}, "the prefix must start with /"),
    ({"routes": ["/a/", "/a/=b:1"]}, "the prefix '/a/' is given twice"),
    ({"routes": ["/a/="]}, "names no backend after '='"),
    ({"routes": ["/a/=b"]}, "routes /a/: 'b' is not \"host:port\""),
    ({"routes": "/"}, "routes must be a list"),
    ({"static_root": "/srv/../etc"}, "static_root must be an absolute folder"),
    ({"static_root": "/srv/www", "routes": ["/"]}, '"/" and static_root both take every path'),
    ({"connect_timeout": "1h"}, "connect_timeout must be a duration"),
    ({"read_timeout": "0s"}, "read_timeout must be a duration"),
    ({"body_size": "1 m"}, "body_size must be a size"),
    ({"health_path": "health"}, "health_path must be a path"),
    ({"health_path": "/.dragonball/conf-digest"}, "health_path must be a path"),
    ({"headers": ["X-A"]}, 'is not "Name: value"'),
    ({"headers": ["X-A: a$b"]}, "without ' \\ or $"),
    ({"headers": ["X-A: a'b"]}, "without ' \\ or $"),
    ({"headers": ["X-A: a\nb"]}, "without ' \\ or $"),
    ({"tls_cert": "-----BEGIN CERTIFICATE-----"}, "tls_cert and tls_key go together"),
    ({"tls_cert": "nope", "tls_key": "-----BEGIN PRIVATE KEY-----"}, "tls_cert holds no PEM"),
    ({"tls_cert": "-----BEGIN CERTIFICATE-----", "tls_key": "nope"}, "tls_key holds no PEM"),
])
def test_every_bad_value_is_refused_with_what_and_how(params, expected):
    found = rules.problems(rules.settings(params))
    assert any(expected in f for f in found), found


def test_every_problem_is_listed_at_once():
    found = rules.problems(rules.settings({"listen_port": -1, "body_size": "x", "headers": [1]}))
    assert len(found) == 3, found


# Whatever an operator types, an accepted value stays inside its own directive: no newline,
# no unquoted ';', '{' or '}' reaches the config.
TEXT = st.text(st.characters(min_codepoint=1, max_codepoint=0x7f), max_size=40)


@settings(max_examples=300, deadline=None)
@given(prefix=TEXT, header=TEXT, value=TEXT, backend=TEXT)
def test_an_accepted_value_never_escapes_its_directive(prefix, header, value, backend):
    p = rules.settings({"backends": ["api:8080"], "routes": [f"{prefix}={backend}"],
                       "headers": [f"{header}: {value}"]})
    if rules.problems(p):
        return
    text = conf.render(p, [], [backend], "d", "/run/x")
    assert text.count("{") == text.count("}")
    for line in text.splitlines():
        if "proxy_set_header" in line and "'" in line:
            assert line.rstrip().endswith("';"), line
