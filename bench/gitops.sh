#!/usr/bin/env bash
# GitOps rollback latency: `lastgood rollback` on a `gitops` environment, in version-file
# mode (fetch, revert lastgood's commits since the target, commit with trailers, push)
# and in branch mode (fetch, one commit restoring the target's tree on top of the tip,
# push), against the runbook's floor: in a warm clone, `git fetch`,
# `git revert --no-edit <tip>`, `git push`.
# Both push to the same local bare repository; no checks (the controller's latency is
# not lastgood's). Rollbacks alternate between two releases, so each run reverts once.
#
#   bash bench/gitops.sh                 # builds target/release/lastgood
#   LASTGOOD=/path/to/lastgood N=30 bash bench/gitops.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib/common.sh"
N="${N:-20}"

bench_binary
bench_workdir gitops
cd "$WORK"
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid

setup() { # $1: name -> a bare repo with main holding apps/web/version = v0
    git init -q --bare -b main "$1.git"
    git clone -q "$1.git" "$1-seed" 2>/dev/null
    mkdir -p "$1-seed/apps/web" && echo v0 > "$1-seed/apps/web/version"
    git -C "$1-seed" add -A && git -C "$1-seed" commit -qm init && git -C "$1-seed" push -q origin HEAD:main
}
setup lg
setup hand

# Branch mode: the branch's commits are the releases (tags b1, b2).
git init -q --bare -b main br.git
git clone -q br.git br-seed 2>/dev/null
for v in b1 b2; do echo $v > br-seed/VERSION; git -C br-seed add -A; git -C br-seed commit -qm "release $v"; git -C br-seed tag $v; done
git -C br-seed push -q origin HEAD~1:refs/heads/main
git -C br-seed push -q --tags origin

cat > lastgood.toml <<'TOML'
[environments.production]
runtime = "gitops"
repo = "lg.git"
branch = "main"
version_file = "apps/web/version"

[environments.branch]
runtime = "gitops"
repo = "br.git"
branch = "main"
TOML
"$LASTGOOD" --config lastgood.toml -q deploy production v1 --reason bench >/dev/null
"$LASTGOOD" --config lastgood.toml -q deploy production v2 --reason bench >/dev/null
"$LASTGOOD" --config lastgood.toml -q deploy branch b1 --reason bench >/dev/null
"$LASTGOOD" --config lastgood.toml -q deploy branch b2 --reason bench >/dev/null

# The hand floor's warm clone, with two deploy commits to revert back and forth.
git clone -q hand.git hand-wc
for v in v1 v2; do echo $v > hand-wc/apps/web/version; git -C hand-wc commit -qam "deploy $v"; done
git -C hand-wc push -q origin HEAD:main

python3 - "$LASTGOOD" "$N" <<'PY'
import statistics, subprocess, sys, time
lg, n = sys.argv[1], int(sys.argv[2])
def timed(argv, **kw):
    t = time.perf_counter(); subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kw); return (time.perf_counter() - t) * 1000
def lastgood(i):
    target = "v1" if i % 2 == 0 else "v2"
    return timed([lg, "--config", "lastgood.toml", "-q", "rollback", "production", "--to", target, "--yes", "--reason", "bench"])
def branch(i):
    target = "#1" if i % 2 == 0 else "#2"
    return timed([lg, "--config", "lastgood.toml", "-q", "rollback", "branch", "--to", target, "--yes", "--reason", "bench"])
def hand(i):
    return timed(["sh", "-c", "cd hand-wc && git fetch -q origin && git checkout -q --detach origin/main && git revert --no-edit HEAD >/dev/null && git push -q origin HEAD:main"])
runs = [("lastgood rollback (gitops, version file)", lastgood), ("lastgood rollback (gitops, branch mode)", branch), ("hand: fetch + revert + push", hand)]
rows = {name: [] for name, _ in runs}
for name, f in runs:
    f(0); f(1)  # warm-up, and back where it started
# Interleaved, so that load from other processes falls on every row alike.
for i in range(n):
    for name, f in runs:
        rows[name].append(f(i))
floor = statistics.median(rows["hand: fetch + revert + push"])
print(f"| run | median ms | p90 ms | ratio to hand |\n|---|---|---|---|")
for name, xs in rows.items():
    xs = sorted(xs); p90 = xs[int(len(xs) * 0.9) - 1]
    print(f"| {name} | {statistics.median(xs):.1f} | {p90:.1f} | {statistics.median(xs) / floor:.2f} |")
print(f"\nN={n} rollbacks each, alternating between two releases, the three runs interleaved; local bare repositories.")
PY
v=$(git --git-dir=lg.git show main:apps/web/version)
[[ "$v" == v1 || "$v" == v2 ]] || { echo "lastgood's repository ends at $v" >&2; exit 1; }
v=$(git --git-dir=br.git show main:VERSION)
[[ "$v" == b1 || "$v" == b2 ]] || { echo "lastgood's branch-mode repository ends at $v" >&2; exit 1; }
