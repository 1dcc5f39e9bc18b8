base:
  'gpu*':
    - slurm-node
