"""The registry's two configuration files as text (pure): distribution's config.yml and the
nginx.conf in front of it. module/registryctl.py writes them at every start and
config_change; why nginx is there (who may write): its docstring. Stdlib only."""

from __future__ import annotations

import json


def render_config(p: dict, files: dict, storage_root: str, upload_secret: str) -> str:
    """config.yml for distribution 2.8 (strings JSON-quoted: valid YAML double-quoted scalars).

    `upload_secret` signs upload state: a fixed one lets an upload survive a restart.
    """
    q = json.dumps
    return "\n".join([
        "# Rendered by registry/module/registryctl.py at every start and config_change.",
        "version: 0.1",
        "log:",
        f"  level: {p['log_level']}",
        "  formatter: text",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {q(storage_root)}",
        "  delete:",
        f"    enabled: {'true' if p['delete_enabled'] else 'false'}",
        "  cache:",
        "    blobdescriptor: inmemory",
        "  maintenance:",
        "    uploadpurging: {enabled: true, age: 168h, interval: 24h, dryrun: false}",
        "auth:",
        "  htpasswd:",
        f"    realm: {q(p['realm'])}",
        f"    path: {q(files['htpasswd'])}",
        "http:",
        "  net: unix",  # nginx is the only way in (render_nginx): TLS and who may write
        f"  addr: {q(files['socket'])}",
        "  relativeurls: true",  # upload Locations through the proxy, whatever its name
        f"  secret: {q(upload_secret)}",
        "  headers:",
        "    X-Content-Type-Options: [nosniff]",
        "health:",
        "  storagedriver: {enabled: true, interval: 10s, threshold: 3}",
        "",
    ])


def render_nginx(p: dict, files: dict, user: str | None) -> str:
    """nginx.conf: TLS on the port, every account may read, only push_htpasswd's may write.

    `limit_except GET` (GET takes HEAD with it) holds the rules for every other method:
    there the writers' file replaces the readers' one. nginx reads both files per request,
    so a rotated password is in force without a restart. `user`: the workers' user (the
    registry's, who owns RUN_DIR and the socket), None when not started as root.
    """
    q = json.dumps
    realm = q(p["realm"])
    temp = files["nginx_temp"]
    return "\n".join([
        "# Rendered by registry/module/registryctl.py at every start and config_change.",
        *([f"user {user};"] if user else []),
        "worker_processes 2;",
        "daemon off;",
        f"pid {q(files['nginx_pid'])};",
        "error_log stderr warn;",
        "events { worker_connections 1024; }",
        "http {",
        "  access_log off;",
        "  server_tokens off;",
        f"  client_body_temp_path {q(temp + '/body')};",
        f"  proxy_temp_path {q(temp + '/proxy')};",
        f"  fastcgi_temp_path {q(temp + '/fastcgi')};",
        f"  uwsgi_temp_path {q(temp + '/uwsgi')};",
        f"  scgi_temp_path {q(temp + '/scgi')};",
        "  map $upstream_http_docker_distribution_api_version $distribution_api {",
        "    '' 'registry/2.0';",
        "  }",
        f"  upstream distribution {{ server {q('unix:' + files['socket'])}; }}",
        "  server {",
        f"    listen {p['port']} ssl;",
        f"    ssl_certificate {q(files['tls_cert'])};",
        f"    ssl_certificate_key {q(files['tls_key'])};",
        "    ssl_protocols TLSv1.2 TLSv1.3;",
        "    client_max_body_size 0;",  # layers of any size; the registry's own limits hold
        "    chunked_transfer_encoding on;",
        "    add_header Docker-Distribution-Api-Version $distribution_api always;",
        "    location /v2/ {",
        f"      auth_basic {realm};",
        f"      auth_basic_user_file {q(files['htpasswd'])};",
        "      limit_except GET {",
        f"        auth_basic {realm};",
        f"        auth_basic_user_file {q(files['push_htpasswd'])};",
        "      }",
        "      proxy_pass http://distribution;",
        "      proxy_http_version 1.1;",
        "      proxy_set_header Host $http_host;",
        "      proxy_set_header X-Forwarded-Proto https;",
        "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "      proxy_request_buffering off;",
        "      proxy_buffering off;",
        "      proxy_read_timeout 900s;",
        "      proxy_send_timeout 900s;",
        "    }",
        "    location / { return 404; }",
        "  }",
        "}",
        "",
    ])
