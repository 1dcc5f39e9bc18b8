slurm-packages:
  pkg.installed:
    - pkgs:
      - slurmd
      - munge

slurm-conf:
  file.managed:
    - name: /etc/slurm/slurm.conf
    - source: salt://slurm-node/files/slurm.conf
    - require:
      - pkg: slurm-packages

slurmd:
  service.running:
    - enable: true
    - watch:
      - file: slurm-conf
