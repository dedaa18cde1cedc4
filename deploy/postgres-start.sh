#!/bin/sh
# First start: initdb with user `gridflex` (password from the generated secret; TCP logins
# need it, scram-sha-256; the container's own Unix socket uses peer auth, for
# `docker exec … psql`) and a database `gridflex`. Then exec the server, so it gets the
# container's stop signal (SIGINT = fast shutdown).
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    initdb --username=gridflex --pwfile="$GRIDFLEX_PG_PASSWORD_FILE" \
        --auth-host=scram-sha-256 --auth-local=peer --encoding=UTF8 --locale=C.UTF-8 "$PGDATA"
    # initdb admits TCP logins from the loopback only; on a bridge network the controller
    # comes from another container's address (a password is needed either way).
    printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    echo "CREATE DATABASE gridflex OWNER gridflex;" | postgres --single -D "$PGDATA" postgres >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses="$GRIDFLEX_PG_LISTEN" -p "$GRIDFLEX_PG_PORT" \
    -c unix_socket_directories=/tmp
