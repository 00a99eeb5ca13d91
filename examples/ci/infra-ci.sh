#!/bin/sh
# infra in CI, the part both GitHub Actions and GitLab CI run (see README.md here):
#   infra-ci.sh plan ENV   on a pull/merge request: validate, plan with --detailed-exitcode,
#                          save the plan for the apply after merge, and write the JSON plan and
#                          the Markdown summary beside it ($INFRA_CI_OUT, default infra-plan/)
#   infra-ci.sh apply      after merge: apply exactly the saved, reviewed plan (infra refuses it,
#                          changing nothing, if the site or the hosts changed since)
# Exit codes: infra's (plan's 2, "there are changes", is success here and is reported as
# changes=true in $GITHUB_OUTPUT when GitHub gives one).
set -eu

INFRA=${INFRA:-infra}
OUT=${INFRA_CI_OUT:-infra-plan}

plan() {
  env=$1
  mkdir -p "$OUT"
  "$INFRA" validate "$env"
  set +e
  "$INFRA" plan "$env" --detailed-exitcode --markdown --out "$OUT/$env.plan" > "$OUT/$env.md"
  code=$?
  set -e
  case $code in
    0) changes=false ;;
    2) changes=true ;;
    *) echo "infra plan $env failed (exit $code)" >&2; exit "$code" ;;
  esac
  "$INFRA" show "$OUT/$env.plan" --json > "$OUT/$env.json"
  printf '%s\n' "$env" > "$OUT/environment"
  if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "changes=$changes" >> "$GITHUB_OUTPUT"; fi
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then cat "$OUT/$env.md" >> "$GITHUB_STEP_SUMMARY"; fi
  echo "infra plan $env: changes=$changes; saved to $OUT/$env.plan" >&2
}

apply() {
  [ -f "$OUT/environment" ] || { echo "no saved plan in $OUT/ (run the plan job first)" >&2; exit 1; }
  env=$(cat "$OUT/environment")
  "$INFRA" apply "$OUT/$env.plan" --yes
}

case "${1:-}" in
  plan) [ $# = 2 ] || { echo "usage: $0 plan ENV" >&2; exit 1; }; plan "$2" ;;
  apply) apply ;;
  *) echo "usage: $0 plan ENV | $0 apply" >&2; exit 1 ;;
esac
