#!/usr/bin/env bash
# The JVM jars of the Spark engine (Kafka source/sink, Delta Lake, S3A) from Maven Central, for
# `spark.jars`. Spark itself is pyspark (pip, in .venv) running local[*]: there is no server to start.
#
#   bash infra/spark.sh install   # mvn dependency:copy-dependencies from infra/spark/pom.xml, cached in
#                                 # infra/.cache/spark-jars, minus every jar that pyspark already ships
#   bash infra/spark.sh start     # checks java; last line: the comma-separated jar list for spark.jars
#   bash infra/spark.sh stop      # nothing to stop
#
# Use: SPARK_LOCAL_IP=127.0.0.1, SparkSession.builder.config("spark.jars", "<that list>").
set -euo pipefail
source "$(dirname "$0")/common.sh"
svc_init spark

POM="$INFRA_HOME/spark/pom.xml"
JARS="$CACHE_DIR/spark-jars"

pyspark_jars() {
  py -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))' 2>/dev/null
}

install() {
  local marker
  marker="$JARS/.pom-$(file_sha "$POM")"
  [ -f "$marker" ] && return 0
  need_maven
  local shipped
  shipped="$(pyspark_jars)" || die "pyspark is not installed in .venv (install the spark extra)"
  say "fetching Spark jars from Maven Central into $JARS"
  rm -rf "$JARS" "$JARS.all"
  mkdir -p "$JARS" "$JARS.all"
  mvn_fetch "$INFRA_HOME/spark" "$JARS.all" "$CACHE_DIR/spark-mvn.log" "the Spark jars"
  # keep only what pyspark lacks: two versions of one library on the classpath is how Spark breaks
  python3 - "$JARS.all" "$shipped" "$JARS" <<'EOF'
import re, shutil, sys
from pathlib import Path
fetched, shipped, out = (Path(p) for p in sys.argv[1:])
def base(name):
    m = re.match(r"^(?P<base>.+?)-\d[\w.\-]*\.jar$", name)
    return m.group("base") if m else name
have = {base(p.name) for p in shipped.glob("*.jar")}
for jar in sorted(fetched.glob("*.jar")):
    if base(jar.name) not in have:
        shutil.copy2(jar, out / jar.name)
EOF
  rm -rf "$JARS.all"
  touch "$marker"
}

start() {
  install
  command -v java >/dev/null || die "java is not installed"
  ls "$JARS"/*.jar | paste -sd, -
}

stop() { :; }
status() { if [ -n "$(ls "$JARS"/*.jar 2>/dev/null)" ]; then echo "jars in $JARS"; else echo "missing"; exit 3; fi; }

svc_main "$@"
