"""AWS Kinesis Data Streams as the log, through boto3 (:mod:`pinpipe.log.kinesis.log` says how)."""

from pinpipe.log.kinesis.log import KinesisLog

__all__ = ["KinesisLog"]
