#!/bin/sh
# Start munge (Slurm's auth daemon) before the controller.
set -e
mkdir -p /run/munge
munged --force
exec "$@"
