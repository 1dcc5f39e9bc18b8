module aiharbor.msxf.local/aihpc/ai-infra/backend

go 1.24
