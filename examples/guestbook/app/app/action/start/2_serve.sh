#!/bin/sh
# The server in the background (this script's process group), then wait until it answers.
python3 -u module/guestbook.py serve &
echo $! >/run/guestbook.pid
port=$(/opt/dragon_ball/bin/params get listen_port)
i=0
until python3 -c "import urllib.request as u,sys; u.urlopen('http://127.0.0.1:$port/health', timeout=2)" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 60 ] || { echo "guestbook: /health did not answer 200 within 30 s"; exit 1; }
    sleep 0.5
done
echo "guestbook: serving on port $port"
