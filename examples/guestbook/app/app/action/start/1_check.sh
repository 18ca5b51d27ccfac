#!/bin/sh
exec python3 module/guestbook.py check
