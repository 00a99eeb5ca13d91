#!/usr/bin/env bash
# gitolite.sh: what a Gitolite administrator does, from the controller, to a sandbox `source`
# host (role source): make a repository, give a deploy key read access, push a local repository.
#
#   gitolite.sh repo ADMIN_KEY HOST REPO [READER PUBKEY_FILE]
#       adds `repo REPO` (RW+ for admin, R for READER, whose key becomes keydir/READER.pub) to
#       gitolite-admin and pushes it; running it again changes nothing
#   gitolite.sh push ADMIN_KEY HOST REPO LOCAL_REPO
#       pushes LOCAL_REPO's branches and tags to REPO
#   gitolite.sh ssh-command ADMIN_KEY
#       prints the GIT_SSH_COMMAND the other two use (for `infra`, which resolves refs with it)
#
# ADMIN_KEY is the private half of secrets.gitolite_admin_pubkey. Host keys are accepted on first
# use into ADMIN_KEY.known_hosts. Names are checked: letters, digits, `.`, `_` and `-` only.
set -euo pipefail

die() { printf 'gitolite.sh: %s\n' "$*" >&2; exit 1; }
name_ok() { [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "bad $2 name '$1'"; }

ssh_command() {
    local key=$1 q
    [ -f "$key" ] || die "no admin key at $key"
    printf -v q 'ssh -i %q -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=%q' \
        "$key" "$key.known_hosts"
    printf '%s\n' "$q"
}

git_as_admin() {
    GIT_SSH_COMMAND=$(ssh_command "$KEY") GIT_TERMINAL_PROMPT=0 \
        GIT_AUTHOR_NAME=admin GIT_AUTHOR_EMAIL=admin@sandbox.test \
        GIT_COMMITTER_NAME=admin GIT_COMMITTER_EMAIL=admin@sandbox.test git "$@"
}

cmd=${1:-}
shift || true
case $cmd in
    ssh-command)
        [ $# = 1 ] || die "usage: gitolite.sh ssh-command ADMIN_KEY"
        ssh_command "$1"
        ;;
    repo)
        [ $# = 3 ] || [ $# = 5 ] || die "usage: gitolite.sh repo ADMIN_KEY HOST REPO [READER PUBKEY_FILE]"
        KEY=$1 HOST=$2 REPO=$3 READER=${4:-} PUB=${5:-}
        name_ok "$REPO" repository
        [ -z "$READER" ] || name_ok "$READER" reader
        work=$(mktemp -d)
        trap 'rm -rf "$work"' EXIT
        git_as_admin clone -q "ssh://git@$HOST/gitolite-admin" "$work/admin"
        conf=$work/admin/conf/gitolite.conf
        if [ -n "$READER" ]; then
            [ -f "$PUB" ] || die "no public key at $PUB"
            cp "$PUB" "$work/admin/keydir/$READER.pub"
        fi
        if ! grep -qx "repo $REPO" "$conf"; then
            {
                printf '\nrepo %s\n    RW+     =   admin\n' "$REPO"
                [ -z "$READER" ] || printf '    R       =   %s\n' "$READER"
            } >> "$conf"
        fi
        git_as_admin -C "$work/admin" add -A
        if ! git_as_admin -C "$work/admin" diff --cached --quiet; then
            git_as_admin -C "$work/admin" commit -q -m "repo $REPO${READER:+, read by $READER}"
            git_as_admin -C "$work/admin" push -q origin HEAD
        fi
        ;;
    push)
        [ $# = 4 ] || die "usage: gitolite.sh push ADMIN_KEY HOST REPO LOCAL_REPO"
        KEY=$1 HOST=$2 REPO=$3 LOCAL=$4
        name_ok "$REPO" repository
        git_as_admin -C "$LOCAL" push -q "ssh://git@$HOST/$REPO" 'refs/heads/*:refs/heads/*' 'refs/tags/*:refs/tags/*'
        ;;
    *)
        die "usage: gitolite.sh repo|push|ssh-command ..."
        ;;
esac
