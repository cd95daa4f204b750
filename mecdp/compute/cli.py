"""`mecdp compute` and `mecdp tags list|show|preview|members|history|migration`.

Each verb goes through a running `mecdp serve` (with the workspace admin token) when one
owns the store, and opens the store itself otherwise; both paths print the same answer (the
API returns what `mecdp.compute.queries` returns).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich import box
from rich.console import Console
from rich.table import Table

from mecdp.api.client import ServerClient, running_server
from mecdp.cli_support import current_settings, local_store, reports_errors
from mecdp.errors import InputError

tags_app = typer.Typer(
    help="Member tags: definitions, previews, members, history, tier migration.",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)
CLI_USER = "cli"

AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of", help="Compute as of YYYY-MM-DD (00:00 UTC) or an ISO time (default: now)"
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON")]
TagArgument = Annotated[str, typer.Argument(help="The tag's key, e.g. dormant")]


def _server() -> ServerClient | None:
    return running_server(current_settings())


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# --------------------------------------------------------------------------- mecdp compute


def run_compute(as_of: str | None, engine: str | None, as_json: bool) -> None:
    """The body of `mecdp compute`: one full layering run, with progress, then a summary."""
    from mecdp.compute.queries import utc_moment

    moment = utc_moment(as_of, "as_of") if as_of else None
    server = _server()
    if server is not None:
        with err_console.status("member layering on the running server"):
            body = _params(as_of=moment.isoformat() if moment else None, engine=engine)
            report: dict[str, Any] = server._call("POST", "/v1/compute", json=body)
    else:
        from mecdp.compute.service import compute_all
        from mecdp.terminal import progress_bar

        settings = current_settings()
        with local_store() as store, progress_bar(err_console) as bar:
            task = bar.add_task("member layering", total=None)

            def progress(label: str, done: int, total: int) -> None:
                bar.update(
                    task, description=f"member layering: {label}", completed=done, total=total
                )

            report = compute_all(
                store,
                workspace=settings.workspace,
                as_of=moment,
                engine_name=engine or settings.engine,
                user=CLI_USER,
                progress=progress,
            ).to_dict()
    if as_json:
        _print_json(report)
        return
    print_compute_report(report)


def print_compute_report(report: dict[str, Any]) -> None:
    console.print(
        f"[bold]Member layering as of {report['as_of']}[/bold] ({report['engine']})",
        highlight=False,
    )
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for label, key in (
        ("members", "members"),
        ("member tags now", "tagged"),
        ("tag changes (history rows)", "tag_changes"),
        ("scores", "scores"),
        ("treatment due dates", "due"),
    ):
        table.add_row(label, f"{report[key]:,}")
    for stage, seconds in report["stages"].items():
        table.add_row(f"seconds: {stage}", f"{seconds:.2f}")
    table.add_row("seconds in all", f"{report['seconds']:.2f}")
    console.print(table)
    skipped = report.get("parameters", {}).get("clv", {}).get("skipped")
    if skipped:
        console.print(f"[yellow]CLV not fitted this run:[/yellow] {skipped}", highlight=False)
    console.print(f"run {report['run_id']}", highlight=False)


# --------------------------------------------------------------------------- mecdp tags


def _local_config() -> Any:
    from mecdp.compute.config import LayeringConfig

    return LayeringConfig.load(current_settings().workspace)


@tags_app.command("list")
@reports_errors
def tags_list(as_json: JsonOption = False) -> None:
    """Every tag definition with its member count."""
    server = _server()
    if server is not None:
        rows: list[dict[str, Any]] = server._call("GET", "/v1/tags")
    else:
        from mecdp.compute import queries

        with local_store() as store:
            rows = queries.list_tags(store.cursor(), _local_config())
    if as_json:
        _print_json(rows)
        return
    table = Table(title="Tags", box=box.SIMPLE_HEAD)
    for column in ("tag", "名称", "category", "type", "refresh", "origin", "v"):
        table.add_column(column, no_wrap=True)
    table.add_column("members", justify="right")
    table.add_column("values")
    for r in rows:
        values = ", ".join(f"{k} {n:,}" for k, n in list((r["values"] or {}).items())[:4])
        tag = r["tag_id"] if r["enabled"] else f"{r['tag_id']} (off)"
        table.add_row(
            tag,
            r["name_zh"],
            r["category"],
            r["value_type"],
            r["refresh"],
            r["origin"],
            str(r["version"]),
            f"{r['members']:,}",
            values,
        )
    console.print(table)


@tags_app.command("show")
@reports_errors
def tags_show(
    tag: TagArgument,
    as_json: JsonOption = False,
) -> None:
    """One tag: names, rule, version, members (per value for enum tags)."""
    server = _server()
    if server is not None:
        found: dict[str, Any] = server._call("GET", f"/v1/tags/{tag}")
    else:
        from mecdp.compute import queries

        with local_store() as store:
            found = queries.get_tag(store.cursor(), tag, _local_config())
    if as_json:
        _print_json(found)
        return
    console.print(f"[bold]{found['tag_id']}[/bold] {found['name_zh']} / {found['name_en']}")
    for key in ("description", "owner", "category", "value_type", "refresh", "origin"):
        if found.get(key):
            console.print(f"  {key}: {found[key]}", highlight=False)
    state = "enabled" if found["enabled"] else "disabled"
    console.print(
        f"  version {found['version']} ({state}), updated {found['updated_at']} "
        f"by {found['updated_by'] or '-'}",
        highlight=False,
    )
    console.print("  rule:", highlight=False)
    rule = yaml.safe_dump(found["rule"], allow_unicode=True, sort_keys=False)
    console.print("\n".join(f"    {line}" for line in rule.splitlines()), highlight=False)
    console.print(f"  members now: {found['members']:,}", highlight=False)
    labels = found.get("value_labels") or {}
    for value, n in (found.get("values") or {}).items():
        console.print(f"    {_labelled(value, labels)}: {n:,}", highlight=False)


def read_definitions(path: Path) -> list[dict[str, Any]]:
    """The definitions in a YAML file: one definition, or ``tags:`` with a list of them (the
    layout of the shipped tags.yaml and workspace tag files)."""
    if not path.is_file():
        raise InputError(f"no such file: {path}", field="file", value=str(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}", field="file") from None
    entries = data.get("tags", [data]) if isinstance(data, dict) else None
    if not entries or not all(isinstance(e, dict) for e in entries):
        raise InputError(
            f"{path}: expected one tag definition or `tags:` with a list of them", field="file"
        )
    return list(entries)


@tags_app.command("preview")
@reports_errors
def tags_preview(
    file: Annotated[Path, typer.Argument(help="YAML file with a tag definition (or tags: [...])")],
    as_of: AsOfOption = None,
    as_json: JsonOption = False,
) -> None:
    """How many members a definition would tag now, and some of them; nothing is saved."""
    from mecdp.compute.queries import utc_moment
    from mecdp.compute.tags import parse_definition

    entries = read_definitions(file)
    definitions = [parse_definition(e, source=f"{file} (tags[{i}])") for i, e in enumerate(entries)]
    moment = utc_moment(as_of, "as_of") if as_of else None
    server = _server()
    if server is not None:
        params = _params(as_of=moment.isoformat() if moment else None)
        results = [
            server._call("POST", "/v1/tags/preview", params=params, json=d.model_dump(mode="json"))
            for d in definitions
        ]
    else:
        from mecdp.compute.queries import preview_definition

        with local_store() as store, err_console.status("materialising member facts"):
            results = [preview_definition(store, d, moment) for d in definitions]
    if as_json:
        _print_json(results)
        return
    for found in results:
        console.print(
            f"[bold]{found['tag_id']}[/bold] as of {found['as_of']}: {found['count']:,} members",
            highlight=False,
        )
        for value, n in (found.get("value_counts") or {}).items():
            console.print(f"  {value}: {n:,}", highlight=False)
        if found["sample"]:
            console.print(f"  sample: {', '.join(found['sample'])}", highlight=False)


@tags_app.command("members")
@reports_errors
def tags_members(
    tag: TagArgument,
    value: Annotated[str | None, typer.Option(help="Only members with this value")] = None,
    limit: Annotated[int, typer.Option(help="How many")] = 100,
    offset: Annotated[int, typer.Option(help="Skip this many first")] = 0,
    as_json: JsonOption = False,
) -> None:
    """The members holding a tag now (one_ids)."""
    server = _server()
    if server is not None:
        page: dict[str, Any] = server._call(
            "GET",
            f"/v1/tags/{tag}/members",
            params=_params(value=value, limit=limit, offset=offset),
        )
    else:
        from mecdp.compute import queries

        with local_store() as store:
            page = queries.tag_members(store.cursor(), tag, value=value, limit=limit, offset=offset)
    if as_json:
        _print_json(page)
        return
    shown = len(page["members"])
    title = f"{tag}{'=' + value if value else ''}: {page['total']:,} members"
    if shown < page["total"]:
        title += f" (showing {offset + 1:,}-{offset + shown:,})"
    table = Table("one_id", "value", title=title, box=box.SIMPLE_HEAD)
    for m in page["members"]:
        table.add_row(m["one_id"], m["value"])
    console.print(table)


@tags_app.command("history")
@reports_errors
def tags_history(
    tag: TagArgument,
    change: Annotated[
        str | None, typer.Option(help="gained, lost or changed (default: every change)")
    ] = None,
    value: Annotated[
        str | None, typer.Option(help="The value gained or changed to (or lost)")
    ] = None,
    since: Annotated[str | None, typer.Option(help="From this date/time (UTC, inclusive)")] = None,
    until: Annotated[str | None, typer.Option(help="Before this date/time (UTC)")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Who gained, lost or changed a tag when ("who became 沉睡 this month")."""
    from mecdp.compute.queries import TAG_CHANGES, utc_moment

    if change is not None and change not in TAG_CHANGES:
        raise InputError(
            f"--change must be one of {', '.join(TAG_CHANGES)}", field="change", value=change
        )
    start = utc_moment(since, "since") if since else None
    end = utc_moment(until, "until") if until else None
    server = _server()
    if server is not None:
        page: dict[str, Any] = server._call(
            "GET",
            f"/v1/tags/{tag}/history",
            params=_params(
                change=change,
                value=value,
                since=start.isoformat() if start else None,
                until=end.isoformat() if end else None,
                limit=limit,
            ),
        )
    else:
        from mecdp.compute import queries

        with local_store() as store:
            page = queries.tag_history(
                store.cursor(),
                tag,
                change=change,
                value=value,
                since=start,
                until=end,
                limit=limit,
            )
    if as_json:
        _print_json(page)
        return
    table = Table(title=f"{tag}: {page['total']:,} changes", box=box.SIMPLE_HEAD)
    for column in ("changed at (UTC)", "one_id", "change", "value", "before", "rule v"):
        table.add_column(column, no_wrap=True)
    for item in page["items"]:
        table.add_row(
            item["changed_at"],
            item["one_id"],
            item["change"],
            item["value"] or "",
            item["previous_value"] or "",
            str(item["rule_version"]),
        )
    console.print(table)


@tags_app.command("migration")
@reports_errors
def tags_migration(
    start: Annotated[str, typer.Option(help="From this date/time (UTC)")],
    end: Annotated[str, typer.Option(help="To this date/time (UTC)")],
    tag: Annotated[str, typer.Option(help="An enum tag, e.g. value_tier or rfm_segment")] = (
        "value_tier"
    ),
    as_json: JsonOption = False,
) -> None:
    """The tier migration matrix: members by value at START (rows) and at END (columns)."""
    from mecdp.compute.queries import utc_moment

    start_at, end_at = utc_moment(start, "start"), utc_moment(end, "end")
    server = _server()
    if server is not None:
        found: dict[str, Any] = server._call(
            "GET",
            "/v1/layering/migration",
            params={"tag": tag, "start": start_at.isoformat(), "end": end_at.isoformat()},
        )
    else:
        from mecdp.compute import queries

        with local_store() as store:
            found = queries.migration(store.cursor(), tag, start_at, end_at, _local_config())
    if as_json:
        _print_json(found)
        return
    print_migration(found)


def _labelled(value: str, labels: dict[str, dict[str, str]]) -> str:
    label = labels.get(value, {}).get("zh")
    return f"{value} {label}" if label else value


def print_migration(found: dict[str, Any]) -> None:
    names = [v if v is not None else "(none)" for v in found["values"]]
    labels = found.get("value_labels") or {}
    table = Table(
        title=f"{found['tag_id']}: {found['start']} → {found['end']} "
        f"({found['total']:,} members, {found['moved']:,} moved)",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("from \\ to", no_wrap=True)
    for name in names:
        table.add_column(_labelled(name, labels), justify="right")
    table.add_column("total", justify="right")
    for name, row, total in zip(names, found["matrix"], found["row_totals"], strict=True):
        table.add_row(_labelled(name, labels), *(f"{n:,}" for n in row), f"{total:,}")
    table.add_row("total", *(f"{n:,}" for n in found["column_totals"]), f"{found['total']:,}")
    console.print(table)
