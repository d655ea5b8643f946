#!/usr/bin/env bash
# Start script of the cancelguard/kafka image, with the official apache/kafka image's interface:
#   KAFKA_FOO_BAR=x in the environment (or as KEY=value arguments) becomes foo.bar=x in server.properties
#   (__ stands for _, ___ for -); CLUSTER_ID names the KRaft cluster; KAFKA_HEAP_OPTS sizes the JVM.
# Unset settings default to one node, broker and controller, on localhost:9092.
set -euo pipefail
for arg in "$@"; do export "${arg?}"; done

: "${KAFKA_NODE_ID:=1}" "${KAFKA_PROCESS_ROLES:=broker,controller}"
: "${KAFKA_LISTENERS:=PLAINTEXT://:9092,CONTROLLER://:9093}"
: "${KAFKA_ADVERTISED_LISTENERS:=PLAINTEXT://localhost:9092}"
: "${KAFKA_LISTENER_SECURITY_PROTOCOL_MAP:=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT}"
: "${KAFKA_CONTROLLER_LISTENER_NAMES:=CONTROLLER}"
: "${KAFKA_CONTROLLER_QUORUM_VOTERS:=1@localhost:9093}"
: "${KAFKA_LOG_DIRS:=/var/lib/kafka/data}"
: "${KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR:=1}" "${KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR:=1}"
: "${KAFKA_TRANSACTION_STATE_LOG_MIN_ISR:=1}"
export "${!KAFKA_@}"

# JVM options of Kafka's own scripts, not broker properties
not_properties=" KAFKA_HEAP_OPTS KAFKA_OPTS KAFKA_JVM_PERFORMANCE_OPTS KAFKA_VERSION "
properties=/var/lib/kafka/server.properties
: >"$properties"
for var in "${!KAFKA_@}"; do
    [[ $not_properties == *" $var "* ]] && continue
    name=${var#KAFKA_}
    name=${name,,}
    name=${name//___/-}
    name=${name//__/@}
    name=${name//_/.}
    echo "${name//@/_}=${!var}" >>"$properties"
done

java=(java -Djava.awt.headless=true -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.xml -cp '/opt/kafka/libs/*')
if [[ ! -f $KAFKA_LOG_DIRS/meta.properties ]]; then
    cluster_id=${CLUSTER_ID:-$("${java[@]}" kafka.tools.StorageTool random-uuid)}
    "${java[@]}" kafka.tools.StorageTool format --ignore-formatted -t "$cluster_id" -c "$properties"
fi
# shellcheck disable=SC2086  # the option strings are lists of JVM options
exec "${java[@]:0:1}" ${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m} ${KAFKA_JVM_PERFORMANCE_OPTS:-} ${KAFKA_OPTS:-} \
    "${java[@]:1}" kafka.Kafka "$properties"
