#!/bin/sh
# The parameters are read per request: a new db_password is in force at once.
exec python3 module/guestbook.py check
