ai_infra:
  release: v0.3.7
  registry: aiharbor.msxf.local/aihpc
