ARG REDIS_VERSION={{REDIS_VERSION}}
FROM redis:${REDIS_VERSION}
ARG APP_MESSAGE
COPY src/backend/app.conf /etc/backend/app.conf
RUN echo "$APP_MESSAGE" > /etc/backend/message
