#!/bin/bash
# podsim run --check: every sharding strategy on 1-8 chips for tiny-decoder
# reproduces the reference (lib/run_strategies.sh).
exec bash "$(dirname "$0")/lib/run_strategies.sh" "$1" tiny-decoder 0
