#!/bin/sh
pid=$(cat /run/guestbook.pid 2>/dev/null) && kill -TERM "$pid" 2>/dev/null
echo "guestbook: stopped"
