#!/usr/bin/env bash
# Installs what the integration tests need on a fresh machine; every step is idempotent.
# Each service has its own infra/<service>.sh with `install`, `start` and `stop`. The downloads that do not
# go through apt (the Maven jars of Kafka and Spark, one after the other as they share Maven's local
# repository; the Airflow venv) run beside the apt installs, which take dpkg's lock one at a time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
beside=(airflow kafka spark)

bash "$here/kafka.sh" install && bash "$here/spark.sh" install &
jars=$!
bash "$here/airflow.sh" install &
airflow=$!
failed=0
for script in "$here"/*.sh; do
  name="$(basename "$script" .sh)"
  case " install-deps common ${beside[*]} " in *" $name "*) continue ;; esac
  bash "$script" install || failed=1
done
wait "$jars" || failed=1
wait "$airflow" || failed=1
exit "$failed"
