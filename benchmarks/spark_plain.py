"""The baseline of ``bench_spark.py``: the batch job as a plain PySpark DataFrame job would write it.

``spark.read.json`` per kind (the schema given, no inference pass), the cleaning of docs/data-rules.md with
DataFrame functions, ``dropDuplicates``, window functions for the top-1 picks and the lower medians, and
the ten outputs written as CSV files with Spark's own writer. No quarantine, no exact JSON typing (a
``"25"`` in an int field just becomes null), no Delta tables: what pinpipe's Spark engine does on top of
this is what its ratio to this job costs.

``dropDuplicates(["unique_id"])`` keeps any one record per unique_id, not the first in arrival order: on
the benchmark's lake every unique_id is posted once, so that is the same row.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pinpipe.transform.queries import OUTPUTS

SCHEMAS = {
    "pin": "index bigint, unique_id string, title string, description string, poster_name string,"
    " follower_count string, tag_list string, is_image_or_video string, image_src string,"
    " downloaded bigint, save_location string, category string",
    "geo": "ind bigint, timestamp string, latitude double, longitude double, country string",
    "user": "ind bigint, first_name string, last_name string, age bigint, date_joined string",
}
PLACEHOLDERS = {
    "title": "No Title Data Available",
    "poster_name": "User Info Error",
    "tag_list": "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e",
    "image_src": "Image src error.",
}


def read(spark: Any, lake: Path, prefix: str, kind: str) -> Any:
    return spark.read.schema(SCHEMAS[kind]).json(str(lake / "topics" / f"{prefix}.{kind}" / "partition=*"))


def clean_pin(raw: Any) -> Any:
    from pyspark.sql import functions as F

    df = raw.withColumnRenamed("index", "ind").drop("downloaded")
    for column, placeholder in PLACEHOLDERS.items():
        df = df.withColumn(column, F.when(F.col(column) != placeholder, F.col(column)))
    df = df.withColumn(
        "description",
        F.when(~F.col("description").startswith("No description available"), F.col("description")),
    )
    fc = F.trim(F.col("follower_count"))
    unit = F.when(fc.endswith("k"), 1000).when(fc.endswith("M"), 1000000).otherwise(1)
    number = F.when(unit > 1, fc.substr(F.lit(1), F.length(fc) - 1)).otherwise(fc)
    df = df.withColumn("follower_count", F.round(number.try_cast("double") * unit).try_cast("bigint"))
    slash = F.instr(F.col("save_location"), "/")
    df = df.withColumn(
        "save_location",
        F.when(slash > 0, F.col("save_location").substr(slash, F.lit(1 << 30))).otherwise(
            F.col("save_location")
        ),
    )
    for column, kind in df.dtypes:
        if kind == "string":
            df = df.withColumn(column, F.when(F.col(column) != "", F.col(column)))
    keyed = df.where(F.col("unique_id").isNotNull()).dropDuplicates(["unique_id"])
    return keyed.unionByName(df.where(F.col("unique_id").isNull()).dropDuplicates())


def clean_geo(raw: Any) -> Any:
    from pyspark.sql import functions as F

    return raw.select(
        "ind",
        F.when(F.col("country") != "", F.col("country")).alias("country"),
        F.array("latitude", "longitude").alias("coordinates"),
        F.col("timestamp").try_cast("timestamp_ntz").alias("timestamp"),
    ).dropDuplicates()


def clean_user(raw: Any) -> Any:
    from pyspark.sql import functions as F

    return raw.select(
        "ind",
        F.concat("first_name", F.lit(" "), "last_name").alias("user_name"),
        "age",
        F.col("date_joined").try_cast("timestamp_ntz").alias("date_joined"),
    ).dropDuplicates()


def top1(df: Any, group: str, value: str, name: str) -> Any:
    """The row with the largest ``value`` per ``group``, ties to the smallest ``name``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    window = Window.partitionBy(group).orderBy(F.col(value).desc(), F.col(name).asc())
    return df.withColumn("_rank", F.row_number().over(window)).where("_rank = 1").drop("_rank")


def lower_median(df: Any, groups: list[str], value: str = "follower_count") -> Any:
    """The value at rank ceil(n/2) of the non-null ``value`` per group."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    df = df.where(F.col(value).isNotNull())
    ordered = Window.partitionBy(*groups).orderBy(value)
    counted = df.withColumn("_rank", F.row_number().over(ordered)).withColumn(
        "_n", F.count("*").over(Window.partitionBy(*groups))
    )
    picked = counted.where(F.col("_rank") == F.ceil(F.col("_n") / 2))
    return picked.select(*groups, F.col(value).alias("median_follower_count"))


def outputs(pin: Any, geo: Any, user: Any) -> dict[str, Any]:
    from pyspark.sql import functions as F

    age_group = (
        F.when(F.col("age").between(18, 24), "18-24")
        .when(F.col("age").between(25, 35), "25-35")
        .when(F.col("age").between(36, 50), "36-50")
        .when(F.col("age") > 50, "50+")
    )
    pin_geo = pin.join(geo, "ind").select(
        "category", "poster_name", "follower_count", "country", F.year("timestamp").alias("post_year")
    )
    pin_user = pin.join(user, "ind").select(
        "category", "follower_count", age_group.alias("age_group"), F.year("date_joined").alias("join_year")
    )
    by_country = (
        pin_geo.where("country IS NOT NULL AND category IS NOT NULL")
        .groupBy("country", "category")
        .agg(F.count("*").alias("category_count"))
    )
    by_year = (
        pin_geo.where("post_year BETWEEN 2018 AND 2022 AND category IS NOT NULL")
        .groupBy("post_year", "category")
        .agg(F.count("*").alias("category_count"))
    )
    posters = (
        pin_geo.where("country IS NOT NULL AND poster_name IS NOT NULL AND follower_count IS NOT NULL")
        .groupBy("country", "poster_name")
        .agg(F.max("follower_count").alias("follower_count"))
    )
    top_users = top1(posters, "country", "follower_count", "poster_name")
    by_age = (
        pin_user.where("age_group IS NOT NULL AND category IS NOT NULL")
        .groupBy("age_group", "category")
        .agg(F.count("*").alias("category_count"))
    )
    joined = pin_user.where("join_year BETWEEN 2015 AND 2020").withColumnRenamed("join_year", "post_year")
    users_by_year = (
        user.select(F.year("date_joined").alias("post_year"))
        .where("post_year BETWEEN 2015 AND 2020")
        .groupBy("post_year")
        .agg(F.count("*").alias("number_users_joined"))
    )
    return {
        "popular_category_by_country": top1(by_country, "country", "category_count", "category"),
        "posts_per_category_by_year": by_year,
        "popular_category_by_year": top1(by_year, "post_year", "category_count", "category"),
        "top_user_by_country": top_users,
        "top_country_by_followers": top_users.orderBy(F.desc("follower_count"), "country")
        .limit(1)
        .select("country", "follower_count"),
        "popular_category_by_age_group": top1(by_age, "age_group", "category_count", "category"),
        "median_followers_by_age_group": lower_median(pin_user.where("age_group IS NOT NULL"), ["age_group"]),
        "users_joined_by_year": users_by_year,
        "median_followers_by_join_year": lower_median(joined, ["post_year"]),
        "median_followers_by_join_year_and_age_group": lower_median(
            joined.where("age_group IS NOT NULL"), ["age_group", "post_year"]
        ),
    }


def write_csv(df: Any, name: str, out: Path) -> None:
    """One ``<out>/<name>.csv``: Spark's CSV writer, one partition, rows in the export order."""
    from pyspark.sql import functions as F

    spec = OUTPUTS[name]
    order = [*spec.group, *(c for c in spec.columns if c not in spec.group)]
    folder = out / f".{name}"
    (
        df.select(*spec.columns)
        .coalesce(1)
        .sortWithinPartitions(*(F.col(c).asc_nulls_last() for c in order))
        .write.mode("overwrite")
        .option("header", True)
        .option("ignoreLeadingWhiteSpace", False)
        .option("ignoreTrailingWhiteSpace", False)
        .csv(str(folder))
    )
    (part,) = folder.glob("part-*.csv")
    part.replace(out / f"{name}.csv")
    shutil.rmtree(folder)


def run(spark: Any, lake: Path, prefix: str, out: Path) -> None:
    """Read, clean, deduplicate, compute and write the ten outputs as ``out/<output>.csv``."""
    pin = clean_pin(read(spark, lake, prefix, "pin")).cache()
    geo = clean_geo(read(spark, lake, prefix, "geo")).cache()
    user = clean_user(read(spark, lake, prefix, "user")).cache()
    out.mkdir(parents=True, exist_ok=True)
    for name, df in outputs(pin, geo, user).items():
        spark.sparkContext.setJobDescription(f"plain {name}")  # the stage breakdown's label
        write_csv(df, name, out)
