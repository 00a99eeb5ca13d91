# Sourced (bash) by the scripts a newcomer runs as root (demo.sh, aws-demo.sh, .ci/run): finds a
# Rust toolchain without needing one in root's PATH. `sudo` resets PATH to secure_path, which
# drops ~/.cargo/bin, and root usually has no toolchain of its own.
#
#   cargo_build DIR ARGS...   `cargo ARGS` in DIR, as the user who owns the toolchain: the one
#                             on PATH, root's rustup (~/.cargo/bin), or, under sudo, SUDO_USER's
#                             rustup (the build then runs as SUDO_USER, so target/ stays theirs)
#   cargo_root DIR ARGS...    `cargo ARGS` in DIR as root (for tests that need root): the same
#                             search; with SUDO_USER's toolchain, root reads that toolchain but
#                             keeps its own crate cache (/root/.cargo) and DIR/target/root
# Both print one line saying what to do and return 1 when no toolchain is found.

# Where rustup puts cargo for a user whose home is $1.
_rustup_cargo() { [ -x "$1/.cargo/bin/cargo" ] && printf '%s\n' "$1/.cargo/bin/cargo"; }

_home_of() { getent passwd "$1" | cut -d: -f6; }

# Sets TOOLCHAIN_CARGO (a cargo to run) and TOOLCHAIN_USER (its owner when that is SUDO_USER).
_find_cargo() {
  TOOLCHAIN_USER='' TOOLCHAIN_CARGO=''
  if TOOLCHAIN_CARGO=$(command -v cargo); then return 0; fi
  if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    if TOOLCHAIN_CARGO=$(_rustup_cargo "$(_home_of "$SUDO_USER")"); then
      TOOLCHAIN_USER=$SUDO_USER
      return 0
    fi
  fi
  local home
  for home in "${HOME:-}" "$(_home_of root)"; do
    [ -n "$home" ] || continue
    if TOOLCHAIN_CARGO=$(_rustup_cargo "$home"); then return 0; fi
  done
  echo "cargo not found (not on PATH, not in ~/.cargo/bin of ${SUDO_USER:+$SUDO_USER or }root): install Rust with rustup as your user (https://rustup.rs), then run this again with sudo" >&2
  return 1
}

# The user's environment for running their rustup toolchain as themselves.
_user_env() {
  local home; home=$(_home_of "$1")
  printf '%s\n' "HOME=$home" "USER=$1" "LOGNAME=$1" "PATH=$home/.cargo/bin:/usr/local/bin:/usr/bin:/bin"
}

# The toolchain found is this user's own (on PATH or root's rustup): cargo ARGS in DIR.
_cargo_here() {
  local dir=$1; shift
  (cd "$dir" && PATH="$(dirname "$TOOLCHAIN_CARGO"):$PATH" "$TOOLCHAIN_CARGO" "$@")
}

cargo_build() {
  local dir=$1; shift
  _find_cargo || return 1
  if [ -z "$TOOLCHAIN_USER" ]; then _cargo_here "$dir" "$@"; return; fi
  if ! runuser -u "$TOOLCHAIN_USER" -- test -w "$dir"; then
    echo "$dir is not writable by $TOOLCHAIN_USER, whose Rust toolchain this would build with: run the build as its owner first (cargo $*)" >&2
    return 1
  fi
  local env; mapfile -t env < <(_user_env "$TOOLCHAIN_USER")
  (cd "$dir" && runuser -u "$TOOLCHAIN_USER" -- env -i "${env[@]}" "$TOOLCHAIN_CARGO" "$@")
}

cargo_root() {
  local dir=$1; shift
  _find_cargo || return 1
  if [ -z "$TOOLCHAIN_USER" ]; then _cargo_here "$dir" "$@"; return; fi
  local uhome; uhome=$(_home_of "$TOOLCHAIN_USER")
  (cd "$dir" && RUSTUP_HOME=${RUSTUP_HOME:-$uhome/.rustup} CARGO_HOME=/root/.cargo \
    CARGO_TARGET_DIR=$dir/target/root PATH="$uhome/.cargo/bin:$PATH" "$TOOLCHAIN_CARGO" "$@")
}
