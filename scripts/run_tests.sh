#!/usr/bin/env bash
# Run pytest and fail when no test ran (pytest exits 5 then; an empty suite must not pass).
python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "error: no tests ran" >&2; exit 1; fi
exit $rc
