#!/usr/bin/env bash
# The whole job on embedded defaults, on a sample app, in a temporary folder:
#   deploy v1; deploy a broken v2, which lastgood rolls back by itself; deploy v3;
#   roll back by hand; print the history and status.
# It needs git and cargo, nothing else (the ledger is SQLite, the app is lastgood's own
# tiny HTTP sample app on a free 127.0.0.1 port). KEEP=1 keeps the folder afterwards.
set -uo pipefail
cd "$(dirname "$0")/.."
cargo build -q --workspace --bins --locked || exit 1
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug"
work=$(mktemp -d "${TMPDIR:-/tmp}/lastgood-demo.XXXXXX")

stop_app() {
  if [ -f "$work/srv/.lastgood/app.pid" ]; then
    pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$work/srv/.lastgood/app.pid")
    [ -n "$pid" ] && kill -- "-$pid" 2>/dev/null
  fi
  [ "${KEEP:-}" = 1 ] && echo "kept $work" || rm -rf "$work"
}
trap stop_app EXIT

port=18080
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '\n%s## %s%s\n' "$bold" "$*" "$plain"; }
run() { printf '$ %s\n' "$*"; "$@"; rc=$?; printf '(exit %d)\n' "$rc"; return 0; }
lastgood() { "$bin/lastgood" "$@"; }

say "A sample app repository with three versions (v2 is broken) in $work"
git init -q -b main "$work/repo"
commit() { # version health message [migration up.sql down.sql]
  printf '%s\n' "$1" > "$work/repo/VERSION"
  printf 'HEALTH=%s\nGREETING=hello\n' "$2" > "$work/repo/app.env"
  if [ $# -ge 6 ]; then
    mkdir -p "$work/repo/migrations/$4"
    printf '%s\n' "$5" > "$work/repo/migrations/$4/up.sql"
    printf '%s\n' "$6" > "$work/repo/migrations/$4/down.sql"
  fi
  git -C "$work/repo" add -A
  git -C "$work/repo" -c user.name=Demo -c user.email=demo@example.invalid commit -q -m "$3"
  git -C "$work/repo" tag "$1"
}
commit v1 ok "First release: the greeting page" \
  2024-01-01-000000_visits "CREATE TABLE visits (id integer PRIMARY KEY, at text NOT NULL);" "DROP TABLE visits;"
commit v2 fail "Rewrite the health endpoint (broken)" \
  2024-02-01-000000_visits_at "CREATE INDEX visits_at ON visits (at);" "DROP INDEX visits_at;"
commit v3 ok "Fix the health endpoint; record greetings" \
  2024-03-01-000000_greetings "CREATE TABLE greetings (id integer PRIMARY KEY, text text);" "DROP TABLE greetings;"
git -C "$work/repo" log --oneline --decorate

cat > "$work/lastgood.toml" <<TOML
[environments.production]
runtime = "releases"
hosts = ["local"]
source = "repo"
deploy_to = "srv"
run = ["$bin/lastgood-sample-app", "--listen", "127.0.0.1:$port"]
keep_releases = 5
stop_timeout = "2s"

[environments.production.database]
url = "sqlite://app.db"                # the app's database; migrations travel with releases
migrations = "migrations"

[[environments.production.checks]]
http = "http://127.0.0.1:$port/health"
expect_body = "{version}"
interval = "100ms"
timeout = "1s"
retries = 10
TOML
say "lastgood.toml"
cat "$work/lastgood.toml"
cd "$work"

say "Deploy v1"
run lastgood deploy production v1 --reason "first release"
printf 'the app says: %s\n' "$(curl -s "127.0.0.1:$port/")"

say "Deploy v2: its health check fails, so lastgood returns to v1 by itself, schema included (exit 1)"
run lastgood deploy production v2 --reason "new health endpoint"
printf 'the app says: %s\n' "$(curl -s "127.0.0.1:$port/")"

say "Deploy v3"
run lastgood deploy production v3 --reason "fixed health endpoint"
printf 'the app says: %s\n' "$(curl -s "127.0.0.1:$port/")"

say "Roll back by hand to the last good release (v1; v2 failed, so it is never chosen)"
echo "v3's migration drops a table on the way down, so lastgood refuses without consent (exit 4):"
run lastgood rollback production --reason "v3 is slow for some users"
echo "With consent it backs up first, then stops, migrates down, switches, starts and verifies:"
run lastgood rollback production --reason "v3 is slow for some users" --allow-data-loss
printf 'the app says: %s\n' "$(curl -s "127.0.0.1:$port/")"

say "History"
run lastgood history production

say "Status"
run lastgood status production

say "The database: schema back at v1's revision, and the backup the rollback took"
run lastgood db status production
run lastgood db backups production
