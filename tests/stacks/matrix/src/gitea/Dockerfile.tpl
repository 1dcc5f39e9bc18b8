ARG GITEA_VERSION={{GITEA_VERSION}}
FROM gitea/gitea:${GITEA_VERSION}
COPY src/gitea/gitea-entrypoint.sh /usr/local/bin/gitea-entrypoint.sh
