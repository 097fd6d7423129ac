#!/usr/bin/env bash
# Every planted bug (src/base/plant.h) is found by the simulator within its seed
# budget: the run exits 1 and names the seed. A plant the simulator cannot find
# fails this test, and so does a build without plants.
set -uo pipefail
sim=$1
budget=${SIM_PLANT_SEEDS:-300}
plants=$("$sim" --list-plants | awk '/^\(/ {exit 3} {print $1}') || {
  echo "plants are not compiled into this build" >&2
  exit 1
}
failed=0
for plant in $plants; do
  out=$("$sim" --plant "$plant" --seeds "$budget" --nodes 4-8 --run-s 10 2>&1)
  rc=$?
  seed=$(grep -m1 -o '^seed [0-9]*' <<<"$out" || true)
  if [[ $rc -eq 1 && -n $seed ]]; then
    echo "found $plant at $seed: $(grep -m1 VIOLATION <<<"$out" | cut -c1-200)"
  else
    echo "NOT FOUND: $plant (exit $rc) in $budget seeds" >&2
    tail -3 <<<"$out" >&2
    failed=1
  fi
done
exit $failed
