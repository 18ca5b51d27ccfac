#!/bin/sh
port=$(/opt/dragon_ball/bin/params get listen_port)
exec python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/health', timeout=3)"
