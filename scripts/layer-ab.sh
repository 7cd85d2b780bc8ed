#!/usr/bin/env bash
# scripts/bench-ab.sh layer BASE.tar.xz NEW.tar.xz [w4a8moe_moe_bench arguments]: two builds of the layer benchmark
# timed alternately in one device call (see there).
exec "$(dirname "$0")/bench-ab.sh" layer "$@"
