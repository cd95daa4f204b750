"""`mecdp <verb>`: the command line. Each verb parses options and calls one service.

Verbs that write go through a running `mecdp serve` when one owns the store, and open the
store themselves otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mecdp.api.client import running_server
from mecdp.cli_support import ctx, local_store, reports_errors
from mecdp.collect.sources import EVENT_KIND
from mecdp.compute.cli import AsOfOption, run_compute, tags_app
from mecdp.config import Settings
from mecdp.identity.cli import identity_app
from mecdp.privacy.cli import PRIVACY_COMMANDS
from mecdp.terminal import print_import_report, print_quality, progress_bar

app = typer.Typer(
    name="mecdp",
    help="MeCDP: customer data platform for medical-aesthetics clinic chains.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
source_app = typer.Typer(help="Register and list data sources.", no_args_is_help=True)
app.add_typer(source_app, name="source")
for _privacy_app, _name in PRIVACY_COMMANDS:  # user, apikey, keys, audit, consent
    app.add_typer(_privacy_app, name=_name)
app.add_typer(identity_app, name="identity")
profiles_app = typer.Typer(help="Golden records and the 360° profile.", no_args_is_help=True)
app.add_typer(profiles_app, name="profiles")
app.add_typer(tags_app, name="tags")

console = Console()


_ctx = ctx


@app.callback()
def main(
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            envvar="MECDP_WORKSPACE",
            help="Workspace folder (default ./workspace)",
        ),
    ] = None,
) -> None:
    """Options shared by every verb."""
    _ctx.settings = Settings(workspace=workspace) if workspace else Settings()


@app.command()
@reports_errors
def init() -> None:
    """Create the workspace: folders, secrets and the store with its schema."""
    with local_store() as store:
        version = store.schema_version()
    console.print(f"workspace ready: {_ctx.settings.workspace} (schema version {version})")


@app.command()
@reports_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
) -> None:
    """Serve the HTTP API and collector; this process owns the store while it runs."""
    import uvicorn

    from mecdp.api.app import create_app

    settings = _ctx.settings.model_copy(
        update={"host": host or _ctx.settings.host, "port": port or _ctx.settings.port}
    )
    console.print(f"MeCDP serving {settings.workspace} at http://{settings.host}:{settings.port}")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
    )


@app.command()
@reports_errors
def demo(
    members: Annotated[int, typer.Option(help="Members in the generated chain")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed")] = 42,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Keep serving the API afterwards")
    ] = True,
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
) -> None:
    """Generate the demo clinic chain, ingest it through the real paths, print a summary."""
    from mecdp.demo.pipeline import run_demo

    settings = _ctx.settings.model_copy(
        update={"host": host or _ctx.settings.host, "port": port or _ctx.settings.port}
    )
    run_demo(settings, members=members, seed=seed, serve=serve_after, console=console)


@source_app.command("add")
@reports_errors
def source_add(
    name: Annotated[str, typer.Argument(help="Source name: a-z, 0-9, _")],
    channel: Annotated[str, typer.Option(help="Channel code, e.g. web, pos, douyin")],
    kind: Annotated[
        str, typer.Option(help="events, or a record kind: orders, appointments, ...")
    ] = EVENT_KIND,
    mapping: Annotated[str | None, typer.Option(help="Mapping for file imports")] = None,
) -> None:
    """Register a source; the new write key is printed as the last line."""
    server = running_server(_ctx.settings)
    if server:
        created: dict[str, Any] = server.add_source(name, channel, kind, mapping)
        write_key = str(created["write_key"])
    else:
        from mecdp.collect.sources import add_source

        with local_store() as store:
            write_key = add_source(
                store.cursor(), name, channel=channel, kind=kind, mapping=mapping
            ).write_key
    console.print(f"source {name} added (channel {channel}, kind {kind}); write key:")
    typer.echo(write_key)


@source_app.command("list")
@reports_errors
def source_list() -> None:
    """List registered sources (write keys are not shown)."""
    server = running_server(_ctx.settings)
    if server:
        rows: list[dict[str, Any]] = server.list_sources()
    else:
        from mecdp.collect.sources import list_sources

        with local_store() as store:
            rows = [s.public() for s in list_sources(store.cursor())]
    table = Table("source", "channel", "kind", "mapping", "created (UTC)")
    for r in rows:
        table.add_row(r["source_id"], r["channel"], r["kind"], r["mapping"] or "", r["created_at"])
    console.print(table)


@app.command()
@reports_errors
def ingest(
    file: Annotated[Path, typer.Argument(help="CSV (UTF-8/GBK), XLSX, JSONL or Parquet file")],
    source: Annotated[str, typer.Option(help="Registered source the file comes from")],
    mapping: Annotated[
        str | None, typer.Option(help="Mapping name or YAML file (default: the source's)")
    ] = None,
) -> None:
    """Import a file: map columns, clean, quarantine bad rows, keep the good ones."""
    from mecdp.errors import InputError

    if not file.is_file():
        raise InputError(f"no such file: {file}", field="file", value=str(file))
    server = running_server(_ctx.settings)
    if server:
        report: dict[str, Any] = server.ingest(file, source, mapping)
    else:
        from mecdp.collect.importer import import_file

        with local_store() as store, progress_bar(console) as bar:
            task = bar.add_task(f"importing {file.name}", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = import_file(
                store, _ctx.settings, file, source_id=source, mapping=mapping, progress=advance
            ).to_dict()
    print_import_report(console, report)


@app.command()
@reports_errors
def quality(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Per source: received, accepted, quarantined by reason, duplicates, fill rate per field."""
    server = running_server(_ctx.settings)
    if server:
        rows: list[dict[str, Any]] = server.quality()
    else:
        from mecdp.collect.quality import quality_report

        with local_store() as store:
            rows = [q.to_dict() for q in quality_report(store.cursor())]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    print_quality(console, rows)


@app.command()
@reports_errors
def resolve(
    match: Annotated[
        bool, typer.Option("--match/--no-match", help="Run the probabilistic pass (Splink)")
    ] = True,
    retrain: Annotated[bool, typer.Option(help="Retrain the match model first")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Rebuild OneID: deterministic identity graph, stable one_ids, probabilistic matching."""
    from mecdp.identity.cli import run_resolve

    run_resolve(match, retrain, as_json)


@profiles_app.command("build")
@reports_errors
def profiles_build(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Rebuild every golden record (traits, identifiers, timeline, 疗程卡) after `mecdp resolve`."""
    server = running_server(_ctx.settings)
    if server:
        report: dict[str, Any] = server._call("POST", "/v1/profiles/build")
    else:
        from mecdp.profiles.service import build_profiles

        with local_store() as store, console.status("building golden records"):
            report = build_profiles(store, workspace=_ctx.settings.workspace).to_dict()
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    console.print(
        f"{report['persons']:,} profiles, {report['traits']:,} traits "
        f"({report['trait_changes']:,} changed), {report['timeline_rows']:,} timeline rows, "
        f"{report['course_cards']:,} course cards in {report['seconds']} s"
    )


@app.command()
@reports_errors
def compute(
    as_of: AsOfOption = None,
    engine: Annotated[
        str | None, typer.Option(help="Batch engine: duckdb or spark (default: the engine setting)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Recompute member layering: tags, RFM, CLV, behaviour tiers, treatment due dates."""
    run_compute(as_of, engine, as_json)
