#!/bin/bash
# A gluster command wrapper for the exactly-once tests: `hold-replace.sh DIR GLUSTER...`.
# A `replace-brick` call writes DIR/replace-started.N and waits until DIR/replace-go exists;
# if the calling agent dies meanwhile, it exits without running gluster (so a kill -9 lands
# mid-action). Each call that goes through is run and logged in DIR/replace.log with its outcome:
# "ok: ARGS", or "refused (exit N: MESSAGE): ARGS" (glusterd's lock held by another peer's call is
# the usual reason, and the agent tries again). Other calls pass.
set -u
dir=$1; shift
case " $* " in
*" replace-brick "*)
  caller=$PPID
  n=$(ls "$dir" | grep -c '^replace-started\.' || true)
  echo "$*" > "$dir/replace-started.$((n + 1))"
  while [ ! -e "$dir/replace-go" ]; do
    kill -0 "$caller" 2>/dev/null || { echo "caller $caller gone; not running: $*" >> "$dir/replace-abandoned.log"; exit 70; }
    sleep 0.1
  done
  out=$(mktemp) err=$(mktemp)
  "$@" >"$out" 2>"$err"; rc=$?
  if [ $rc -eq 0 ]; then echo "ok: $*" >> "$dir/replace.log"
  else echo "refused (exit $rc: $(cat "$out" "$err" | tr '\n' ' ')): $*" >> "$dir/replace.log"; fi
  cat "$out"; cat "$err" >&2; rm -f "$out" "$err"
  exit $rc;;
esac
exec "$@"
