"""Python tables of the demo's sales domain (every module beside `defs.yaml` belongs to its
domain): a transform SQL does badly, a per-customer rolling window and a pandas UDF, feeding
the SQL table `spend_bands` of `defs.yaml`.

Each `@table` function takes its inputs as DataFrames, bound by parameter name, and returns
the table's new rows; the write, metrics, logs, checks and quality rules are those of every
table (see `etl_assets.core.python_tables`).
"""

from datetime import timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from etl_assets import LoadWindow, table

ROLLING_DAYS = 7
HALF_SCORE_SPEND = 300  # a week's spend that scores 50 of 100


def spend_score(spend: Column) -> Column:
    """0-100, saturating: `100 * spend / (spend + HALF_SCORE_SPEND)`, one decimal (a pandas
    UDF: vectorized Python on Arrow batches, the place for model scoring code).

    Built when the table loads, not when the module is imported, so loading the definitions
    neither imports pandas nor needs pyarrow.
    """
    import pandas as pd
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("double")
    def score(values: pd.Series) -> pd.Series:
        return (100 * values / (values + HALF_SCORE_SPEND)).round(1)

    return score(spend.cast("double"))


@table(
    description="Per customer, on each day they ordered: orders and spend over the 7 days "
                "ending that day, and a spend score.",
    inputs=["clean_orders"],
    partitions={"type": "daily", "start": "2026-01-01", "column": "order_date",
                "timezone": "Asia/Seoul"},
    tags={"cadence": "daily"},  # `make demo` loads the daily tables as one backfill run
    metrics={"sum": ["orders_7d", "spend_7d"]},
    quality=[
        {"not_null": ["customer_id", "spend_7d"], "severity": "ERROR"},
        {"range": {"column": "spend_score", "min": 0, "max": 100}},
    ],
)
def customer_rolling_spend(clean_orders: DataFrame, window: LoadWindow) -> DataFrame:
    orders = clean_orders.where(F.col("customer_id").isNotNull())
    if window.partition_start is not None:
        # The week before the first day counts in its sums; the load keeps only the run's days.
        first = window.partition_start - timedelta(days=ROLLING_DAYS - 1)
        orders = orders.where((F.col("order_date") >= F.lit(first))
                              & (F.col("order_date") < F.lit(window.partition_end)))
    per_day = orders.groupBy("customer_id", "order_date").agg(
        F.count(F.lit(1)).alias("orders"), F.sum("amount").alias("spend"))
    # A range over day numbers: the 7 calendar days ending on the row's day, however many of
    # them had orders (a ROWS frame would count the last 7 order days instead).
    last_week = (Window.partitionBy("customer_id").orderBy(F.unix_date("order_date"))
                 .rangeBetween(-(ROLLING_DAYS - 1), 0))
    rolled = per_day.select(
        "order_date", "customer_id",
        F.sum("orders").over(last_week).alias("orders_7d"),
        F.sum("spend").over(last_week).alias("spend_7d"),
    )
    return rolled.withColumn("spend_score", spend_score(F.col("spend_7d")))
