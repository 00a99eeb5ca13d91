#!/usr/bin/env bash
# Makes the git repository role app deploys in the sandbox inventories: one commit of
# tests/sandbox/demo-app on branch master, tagged v1, in a bare repository at BARE (default
# /var/lib/infra-sandbox/webplatform.git). The commit is made with fixed names and dates, so it
# is the same commit on every machine and every run, and a second run changes nothing.
#   tests/sandbox/demo-repo.sh [BARE]        prints the commit
# BARE must be outside /tmp, /run and the checkout: the sandbox hosts see the machine's other
# folders through their overlay root, and fetch from it as from any git URL.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bare=${1:-/var/lib/infra-sandbox/webplatform.git}
export GIT_AUTHOR_NAME="infra sandbox" GIT_AUTHOR_EMAIL="sandbox@infra.invalid"
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
export GIT_AUTHOR_DATE="2026-12-01T00:00:00Z" GIT_COMMITTER_DATE="2026-12-01T00:00:00Z"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$work" init -q -b master
cp -r "$here/demo-app/." "$work/"
git -C "$work" add -A
git -C "$work" commit -q -m "The sandbox demo application"
git -C "$work" tag v1
commit=$(git -C "$work" rev-parse HEAD)

if [ "$(git --git-dir="$bare" rev-parse -q --verify 'refs/heads/master^{commit}' 2>/dev/null)" != "$commit" ]; then
  # Built beside BARE and renamed into place: tests running at once never see half a repository.
  mkdir -p "$(dirname "$bare")"
  new=$(mktemp -d "$bare.new.XXXXXX")
  git init -q --bare "$new"
  git -C "$work" push -q "$new" master v1
  chmod -R a+rX "$new"
  rm -rf "$bare.old"
  [ -e "$bare" ] && mv "$bare" "$bare.old"
  mv "$new" "$bare"
  rm -rf "$bare.old"
fi
echo "$commit"
