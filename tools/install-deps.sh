#!/usr/bin/env bash
# Installs the Debian packages peftbench builds and runs with (no-op when all are present).
set -euo pipefail
PKGS="build-essential cmake libopenblas-dev libpapi-dev papi-tools libcjson-dev libutf8proc-dev libssl-dev libgsl-dev liblapacke-dev libdnnl-dev gnuplot-nox clang-14 libclang-rt-14-dev libomp-14-dev"
# English text for `pretrain --extra-text wordnet,fortunes` (harness/corpus.h): WordNet 3.0 glosses, fortune cookies
PKGS="$PKGS wordnet-base fortunes fortunes-min"
# `peftbench sweep slurm`, and tests/e2e_slurm.sh's private single-node cluster
PKGS="$PKGS slurm-wlm munge"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
