#!/usr/bin/env bash
# The yardstick: step 2 of the old build.sh (its design note, shared/seed/), one image at
# a time: `docker image inspect`, then two `docker tag`s (the name the Dockerfile uses and
# the localhost/ alias). It never knows whether anything changed, so it always does it all.
#     shell_loop.sh REGISTRY IMAGE...
set -u
registry=$1
shift
for image in "$@"; do
    if docker image inspect "$image" >/dev/null 2>&1; then
        docker tag "$image" "$registry/$image"
        docker tag "$image" "localhost/$image"
    fi
done
