#!/bin/bash
# podsim run --check: every sharding strategy on 1-8 chips for tiny-t5
# reproduces the reference (lib/run_strategies.sh).
exec bash "$(dirname "$0")/lib/run_strategies.sh" "$1" tiny-t5 0
