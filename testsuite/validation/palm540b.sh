#!/usr/bin/env bash
# ctest entry for palm540b.py (PaLM 540B on 2 x 3072 TPU v4; see docs/validation.md).
exec python3 "$(dirname "$0")/palm540b.py" "$1"
