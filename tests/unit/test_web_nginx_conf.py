"""The example Service's nginx location (examples/web/web/module/nginx_conf.py): what it
tells the backends about the request (issue 15: Debian's nginx `$host` drops the port, which
broke an app's redirects behind a Service on a port other than 80)."""

from __future__ import annotations

import importlib.util

from support import ROOT


def _nginx_conf():
    path = ROOT / "examples" / "web" / "web" / "module" / "nginx_conf.py"
    spec = importlib.util.spec_from_file_location("nginx_conf", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_backends_get_the_host_with_its_port_and_the_forwarded_headers():
    location = _nginx_conf().api_location(["api:8080"], [{"address": "10.0.1.5:8080"}], [])
    assert "proxy_set_header Host $http_host;" in location      # "wiki.site:8080", as sent
    assert "proxy_set_header Host $host;" not in location
    for header in ("X-Forwarded-For $proxy_add_x_forwarded_for", "X-Forwarded-Proto $scheme",
                   "X-Forwarded-Host $http_host", "X-Real-IP $remote_addr"):
        assert f"proxy_set_header {header};" in location
