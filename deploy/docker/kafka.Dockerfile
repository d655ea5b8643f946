# Apache Kafka (one KRaft node) for tests and Compose where no registry serves apache/kafka: Debian's
# Java 17 and the broker jars the project fetches from Maven Central (make kafka, .local/cache). It takes
# the same configuration as the official image: KAFKA_* environment variables become server properties.
ARG BASE_IMAGE=cancelguard/base:bookworm
FROM ${BASE_IMAGE}
ARG KAFKA_VERSION
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 1000 --user-group --no-create-home --home-dir /nonexistent appuser \
 && mkdir -p /var/lib/kafka/data \
 && chown appuser:appuser /var/lib/kafka /var/lib/kafka/data
COPY .local/cache/kafka-${KAFKA_VERSION}/libs/ /opt/kafka/libs/
COPY deploy/local/log4j2.xml /opt/kafka/config/log4j2.xml
COPY deploy/docker/kafka-run.sh /etc/kafka/docker/run
LABEL org.opencontainers.image.title="cancelguard/kafka" \
      org.opencontainers.image.description="Apache Kafka ${KAFKA_VERSION}, one KRaft node, built offline from Maven Central jars" \
      org.opencontainers.image.version="${KAFKA_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
USER appuser
EXPOSE 9092
CMD ["/etc/kafka/docker/run"]
