# Sourced by the scripts that need a PostgreSQL 15 of their own (the demo, the crash test):
# installing the extension, and starting and stopping a throwaway cluster.

PG_BIN=/usr/lib/postgresql/15/bin

# -X: no ~/.psqlrc to change the output; ON_ERROR_STOP: a failed statement fails the script.
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# Postgres refuses to run as root, so as root the throwaway server runs as "postgres"; from "/"
# because postgres may not be allowed into the current directory.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

# Builds the extension and installs it into this machine's PostgreSQL 15, with its companion;
# arguments go to `cargo pgrx install` (such as --release).
install_extension() {
    local args=(--pg-config "$PG_BIN/pg_config" "$@")
    # Installing writes to PostgreSQL's lib and share directories; as non-root pgrx copies with sudo.
    [ "$(id -u)" -eq 0 ] || args+=(--sudo)
    cargo pgrx install "${args[@]}" && install_companion
}

# Installs hannoy_pg_vector, the SQL-only companion with operator classes on pgvector's types
# (sql/hannoy_pg_vector.*; `cargo pgrx install` copies only hannoy_pg's own files).
install_companion() {
    local target sudo=()
    target="$("$PG_BIN/pg_config" --sharedir)/extension"
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" install -m 644 sql/hannoy_pg_vector.control sql/hannoy_pg_vector--*.sql "$target/"
}

# A port is taken if something listens on it over TCP or a server answers on the usual socket.
port_in_use() {
    if command -v ss >/dev/null 2>&1 && [ -n "$(ss -Hltn "sport = :$1")" ]; then
        return 0
    fi
    local host rc
    for host in /var/run/postgresql 127.0.0.1; do
        rc=0
        "$PG_BIN/pg_isready" -q -t 2 -h "$host" -p "$1" || rc=$?
        # 0: accepting, 1: rejecting (starting up), 2: nobody there.
        [ "$rc" -ge 2 ] || return 0
    done
    return 1
}

# start_cluster DIR FIRST_PORT [server settings...]: initdb in DIR/data and start it on the first
# free port from FIRST_PORT, listening only on a Unix socket in DIR (trust authentication must
# not reach TCP); the log goes to DIR/server.log. Points the PG* variables at it.
start_cluster() {
    local dir=$1 port=$2
    shift 2
    while port_in_use "$port"; do port=$((port + 1)); done
    [ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
    if ! as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync \
        -E UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        return 1
    fi
    local settings="-p $port -c listen_addresses='' -c unix_socket_directories='$dir'"
    local setting
    for setting in "$@"; do settings+=" -c $setting"; done
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$settings" start >/dev/null
    export PGHOST=$dir PGPORT=$port PGUSER=postgres PGDATABASE=postgres
    unset PGHOSTADDR PGSERVICE
}

# stop_cluster DIR: stops the cluster in DIR/data if it runs.
stop_cluster() {
    if [ -f "$1/data/postmaster.pid" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null
    fi
}

# throwaway_cluster NAME FIRST_PORT [server settings...]: start_cluster in a new /tmp/NAME.XXXXXX
# (CLUSTER_DIR), stopped and removed when the script exits, however it exits (after the
# script's before_cleanup function, if it has one).
throwaway_cluster() {
    CLUSTER_DIR=$(mktemp -d "/tmp/$1.XXXXXX")
    trap 'set +e; ! declare -F before_cleanup >/dev/null || before_cleanup
          stop_cluster "$CLUSTER_DIR"; rm -rf "$CLUSTER_DIR"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local port=$2
    shift 2
    start_cluster "$CLUSTER_DIR" "$port" "$@"
}

# start_shards COUNT FIRST_PORT: COUNT shard clusters in CLUSTER_DIR/shard1.. (stopped by
# stop_shards), each with hannoy_pg and `items (id int PRIMARY KEY, category int, embedding
# real[])` indexed by hannoy on (embedding, category); sets shard_host and shard_port. Then, on
# the cluster the PG* variables pointed at before (the coordinator), the partitioned table
# `items` whose hash partitions are foreign tables on the shards, over servers with
# `extensions 'hannoy_pg'` (the distance operators are shipped), `fetch_size '10'` and
# `batch_size '1000'` (rows inserted through the coordinator go in batches).
start_shards() {
    local count=$1 port=$2 n coordinator_host=$PGHOST coordinator_port=$PGPORT
    shard_host=()
    shard_port=()
    for n in $(seq 1 "$count"); do
        mkdir -p "$CLUSTER_DIR/shard$n"
        start_cluster "$CLUSTER_DIR/shard$n" "$port"
        shard_host+=("$PGHOST")
        shard_port+=("$PGPORT")
        port=$((PGPORT + 1))
        psql_ <<'SQL'
CREATE EXTENSION hannoy_pg;
CREATE TABLE items (id int PRIMARY KEY, category int, embedding real[]);
CREATE INDEX items_idx ON items USING hannoy (embedding, category);
SQL
    done
    export PGHOST=$coordinator_host PGPORT=$coordinator_port
    {
        echo "CREATE EXTENSION IF NOT EXISTS hannoy_pg; CREATE EXTENSION IF NOT EXISTS postgres_fdw;"
        echo "CREATE TABLE items (id int, category int, embedding real[]) PARTITION BY HASH (id);"
        for n in $(seq 1 "$count"); do
            echo "CREATE SERVER shard$n FOREIGN DATA WRAPPER postgres_fdw
                    OPTIONS (host '${shard_host[$((n - 1))]}', port '${shard_port[$((n - 1))]}',
                             dbname 'postgres', extensions 'hannoy_pg', fetch_size '10',
                             batch_size '1000');
                  CREATE USER MAPPING FOR postgres SERVER shard$n OPTIONS (user 'postgres');
                  CREATE FOREIGN TABLE items_$n PARTITION OF items
                    FOR VALUES WITH (MODULUS $count, REMAINDER $((n - 1))) SERVER shard$n
                    OPTIONS (table_name 'items');"
        done
    } | psql_ >/dev/null
}

# on_shard N [psql arguments...]: psql on shard N, unaligned and without headers.
on_shard() {
    local n=$1
    shift
    psql_ -h "${shard_host[$((n - 1))]}" -p "${shard_port[$((n - 1))]}" -At "$@"
}

# stop_shards: stops every shard cluster start_shards started.
stop_shards() {
    local dir
    for dir in "$CLUSTER_DIR"/shard*; do
        if [ -d "$dir" ]; then stop_cluster "$dir"; fi
    done
}
