#!/bin/sh
# Emit the manifests for the application in the current directory:
# the platform defaults first, then the app's own manifests.
set -e
cat /usr/share/ai-infra/ai-infra-defaults.yaml
for f in ./*.yaml; do
    [ "$f" = "./ai-infra.yaml" ] && continue
    echo "---"
    cat "$f"
done
