# Rendered by reconcile from docker-compose.yml.tpl ({{ '{{' }}NAME}} from .env).
name: matrix

x-defaults: &defaults
  restart: unless-stopped

services:
  gitea:
    <<: *defaults
    image: ai-infra-gitea:${IMAGE_TAG}
    build:
      context: .
      dockerfile: src/gitea/Dockerfile

  backend:
    <<: *defaults
    image: ai-infra-backend:${IMAGE_TAG}
    build:
      context: .
      dockerfile: src/backend/Dockerfile

  singleuser:
    <<: *defaults
    image: ai-infra-singleuser:${IMAGE_TAG}
    build:
      context: .
      dockerfile: src/jupyterhub/Dockerfile.singleuser
      args:
        NOTEBOOK_DIR: /home/jovyan/work

  # Two services running one image: compose builds it once, and so does reconcile.
  worker-cpu:
    <<: *defaults
    image: ai-infra-worker:${IMAGE_TAG}
    build: &worker
      context: .
      dockerfile: src/worker/Dockerfile
  worker-gpu:
    <<: *defaults
    image: ai-infra-worker:${IMAGE_TAG}
    build: *worker

  seaweedfs:
    <<: *defaults
    image: chrislusf/seaweedfs:{{SEAWEEDFS_VERSION}}

  redis:
    image: redis:${REDIS_VERSION}

  debug-tools:
    image: busybox:1.36
    profiles: ["debug"]
