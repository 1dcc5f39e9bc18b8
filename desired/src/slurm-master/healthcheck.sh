#!/opt/slurm/libexec/busybox sh
# Slurm HealthCheckProgram: drain the node when the scratch disk is missing.
if [ ! -d /scratch ]; then
    scontrol update NodeName="$(hostname -s)" State=DRAIN Reason="no /scratch"
fi
