# Sourced by scripts/test.sh and scripts/gpu-check.sh: test counts from a runner's log.
#   suite_counts LOG KIND   prints "PASSED FAILED" (KIND: cargo | bun)
suite_counts() {
  local log=$1 kind=$2 p f
  if [ "$kind" = cargo ]; then
    p=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
    f=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
  else
    p=$(grep -Eo '^ *[0-9]+ pass$' "$log" | awk '{s+=$1} END {print s+0}')
    f=$(grep -Eo '^ *[0-9]+ fail$' "$log" | awk '{s+=$1} END {print s+0}')
  fi
  echo "$p $f"
}
