# Shared by the bench scripts: `source "$HERE/lib/common.sh"` after setting HERE.
#   ROOT                the repository
#   bench_binary        sets LASTGOOD (built in release mode unless already set) and exports it
#   bench_workdir NAME  sets WORK to a new temp dir, removed at exit unless KEEP is set
ROOT="$(cd "$HERE/.." && pwd)"

bench_binary() {
    if [[ -z "${LASTGOOD:-}" ]]; then
        (cd "$ROOT" && cargo build --release -q -p lastgood-cli) >&2
        LASTGOOD="$ROOT/target/release/lastgood"
    fi
    LASTGOOD="$(readlink -f "$LASTGOOD")"
    [[ -x "$LASTGOOD" ]] || { echo "not executable: $LASTGOOD" >&2; exit 2; }
    export LASTGOOD
}

bench_workdir() {
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/lastgood-bench-$1.XXXXXX")"
    if [[ -n "${KEEP:-}" ]]; then
        echo "keeping $WORK" >&2
    else
        trap 'rm -rf "$WORK"' EXIT
    fi
}

# bench_repo DIR: a git repository at DIR with tags v1 and v2 (VERSION = 1, then 2).
bench_repo() {
    git init -q "$1"
    (
        cd "$1"
        git config user.email bench@example.invalid
        git config user.name bench
        echo 1 > VERSION; git add VERSION; git commit -qm "first"; git tag v1
        echo 2 > VERSION; git commit -qam "second"; git tag v2
    )
}
