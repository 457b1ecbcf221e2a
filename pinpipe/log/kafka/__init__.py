"""Apache Kafka as the log, through confluent-kafka (:mod:`pinpipe.log.kafka.log` says how)."""

from pinpipe.log.kafka.log import KafkaLog, admin

__all__ = ["KafkaLog", "admin"]
