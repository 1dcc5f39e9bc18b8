base:
  '*':
    - ai-infra
