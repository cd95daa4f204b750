"""Terminal output shared by the CLI verbs: progress bars and report tables."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def print_import_report(console: Console, report: dict[str, Any]) -> None:
    if report.get("already_imported"):
        console.print(f"{report['file_name']}: already imported for {report['source_id']}")
        return
    console.print(
        f"{report['file_name']} → {report['source_id']}: read {report['rows_read']:,}, "
        f"accepted {report['accepted']:,}, quarantined {report['quarantined']:,}, "
        f"duplicates {report['duplicates']:,}"
    )
    for sample in report.get("sample_rejects", [])[:10]:
        console.print(
            f"  row {sample.get('row')}, column {sample.get('column')}: {sample.get('reason')}",
            highlight=False,
            markup=False,
        )


def print_quality(console: Console, rows: list[dict[str, Any]]) -> None:
    """The per-source quality report: counts, quarantine reasons, fill rates."""
    table = Table(title="Sources", box=box.SIMPLE_HEAD)
    table.add_column("source", no_wrap=True)
    table.add_column("channel", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    for name in ("received", "accepted", "quarantined", "duplicates"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(
            r["source_id"],
            r["channel"],
            r["kind"],
            f"{r['received']:,}",
            f"{r['accepted']:,}",
            f"{r['quarantined']:,}",
            f"{r['duplicates']:,}",
        )
    console.print(table)
    reasons = Table(title="Quarantined by reason", box=box.SIMPLE_HEAD)
    reasons.add_column("source", no_wrap=True)
    reasons.add_column("rule", no_wrap=True)
    reasons.add_column("records", justify="right")
    for r in rows:
        for rule, n in r["quarantined_by_rule"].items():
            reasons.add_row(r["source_id"], rule, f"{n:,}")
    if reasons.row_count:
        console.print(reasons)
    fill = Table(title="Fill rate per field", box=box.SIMPLE_HEAD)
    fill.add_column("source", no_wrap=True)
    fill.add_column("field fill rates")
    for r in rows:
        if r["fill_rate"]:
            rates = ", ".join(f"{k} {v:.0%}" for k, v in r["fill_rate"].items())
            fill.add_row(r["source_id"], rates)
    if fill.row_count:
        console.print(fill)
