#!/bin/sh
eval "$(/opt/dragon_ball/bin/params sh listen_port db_host db_name)"
echo "guestbook on port $param_listen_port, database $param_db_name on $param_db_host"
