"""The health report as an asset downstream of every table, with its totals as metadata."""

# No `from __future__ import annotations`: Dagster reads the annotations of asset functions
# (context, config, resources) at definition time and cannot resolve them from strings.
import dagster as dg
from dagster_pyspark import LazyPySparkResource

from etl_assets.core.health_report import DEFAULT_DAYS, report_path, summary_markdown
from etl_assets.core.settings import Settings
from etl_assets.core.specs import Project
from etl_assets.orchestration.resources import EtlLogResource

HEALTH_REPORT_ASSET = "etl_health_report"


# Metadata of the asset's materializations: plain numbers, so the UI plots them over time.
TABLES_LOADED = "health/tables_loaded"


ROWS_LOADED = "health/rows_loaded"


RUNS = "health/runs"


FAILED_RUNS = "health/failed_runs"


OPEN_FLAGS = "health/open_flags"


PAGE = "health/page"


SUMMARY = "health/summary"


class HealthReportConfig(dg.Config):
    """Run config of `etl_health_report`."""

    days: int = DEFAULT_DAYS


def build_health_report_asset(project: Project, settings: Settings) -> dg.AssetsDefinition:
    """The report as an asset, downstream of every table (it summarizes their loads).

    Depending on the tables orders it after the loads of the same run; it reads only
    `etl_log.*`, never the tables. A table's checks are judged in its own step, which writes
    their `check_log` rows before it ends, so the page shows the checks of the same run.
    """
    page = report_path(settings)

    @dg.asset(
        name=HEALTH_REPORT_ASSET,
        deps=[dg.AssetKey(name) for name in project.tables],
        group_name="etl_health",
        kinds={"spark", "html"},
        description=(f"Pipeline-health page over the log tables ({page}): runs, rows, "
                     "failures, durations, open anomaly and quality flags."),
    )
    def _report(
        context: dg.AssetExecutionContext,
        config: HealthReportConfig,
        spark: LazyPySparkResource,
        etl_log: EtlLogResource,
    ) -> dg.MaterializeResult:
        # Imported here: the page's Plotly costs every definitions load ~0.3 s (py-spy on
        # `dg launch`), and only this step draws it.
        from etl_assets.engine.health import write_report

        session = spark.spark_session
        report = write_report(session, etl_log.database, page, days=config.days)
        context.log.info(f"wrote {page} ({page.stat().st_size:,} bytes)")
        t = report.totals
        return dg.MaterializeResult(metadata={
            SUMMARY: dg.MetadataValue.md(summary_markdown(report, page)),
            PAGE: dg.MetadataValue.path(str(page)),
            TABLES_LOADED: dg.MetadataValue.int(int(t["tables_loaded"])),
            ROWS_LOADED: dg.MetadataValue.int(int(t["rows_loaded"])),
            RUNS: dg.MetadataValue.int(int(t["runs"])),
            FAILED_RUNS: dg.MetadataValue.int(int(t["failed"])),
            OPEN_FLAGS: dg.MetadataValue.int(int(t["open_flags"])),
        })

    return _report
