#!/bin/sh
# As the official redis image does: `redis-server` started with no configuration file (the compose
# files pass options only) serves every interface without protected mode, since the container's
# network is the boundary.
set -e
if [ "$1" = "redis-server" ]; then
  case "$2" in
    *.conf) ;;
    *) shift; set -- redis-server --protected-mode no --bind '* -::*' "$@" ;;
  esac
fi
exec "$@"
