"""Reading runs back: result tables beside the published ones, and figures (matplotlib, optional)."""

from gevb.analysis.report import collect_runs, published_results, write_report

__all__ = ["collect_runs", "published_results", "write_report"]
