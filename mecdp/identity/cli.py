"""`mecdp resolve` and `mecdp identity explain|split|review|resolve`.

Each verb goes through a running `mecdp serve` (with the workspace admin token) when one
owns the store, and opens the store itself otherwise. Identifier values are printed only on
this operator's own terminal (local admin); the API masks them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mecdp.api.client import ServerClient, running_server
from mecdp.cli_support import current_settings, local_store, reports_errors
from mecdp.identity import service
from mecdp.privacy.audit import HEAD_FILE

identity_app = typer.Typer(
    help="OneID: explain a person, split, review probabilistic matches.", no_args_is_help=True
)
review_app = typer.Typer(help="The review queue of probabilistic matches.", no_args_is_help=True)
identity_app.add_typer(review_app, name="review")
console = Console()
err_console = Console(stderr=True)
CLI_ACTOR = "cli"
_settings = current_settings
_reports_errors = reports_errors
_local_store = local_store


def _server() -> ServerClient | None:
    return running_server(_settings())


def _head() -> Path:
    return _settings().secrets_dir / HEAD_FILE


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data, ensure_ascii=False, default=str))


def run_resolve(match: bool, retrain: bool, as_json: bool) -> None:
    """Full rebuild with progress (the body of `mecdp resolve`)."""
    server = _server()
    if server is not None:
        with console.status("rebuilding identities on the running server"):
            report = server._call(
                "POST", "/v1/identity/rebuild", json={"match": match, "retrain": retrain}
            )
    else:
        from mecdp.terminal import progress_bar

        with _local_store() as store, progress_bar(err_console) as bar:
            task = bar.add_task("OneID", total=None)

            def progress(step: str) -> None:
                bar.update(task, description=f"OneID: {step}")

            report = service.resolve_identities(
                store,
                workspace=_settings().workspace,
                match=match,
                retrain=retrain,
                progress=progress,
                actor=CLI_ACTOR,
            ).to_dict()
            bar.update(task, total=1, completed=1, description="OneID: done")
    if as_json:
        _print_json(report)
        return
    table = Table(title="OneID rebuild")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in report.items():
        if key != "seconds":
            table.add_row(key, f"{value:,}")
    for key, value in report["seconds"].items():
        table.add_row(f"seconds: {key}", f"{value:.2f}")
    console.print(table)


@identity_app.command("resolve")
@_reports_errors
def resolve_ref(ref: Annotated[str, typer.Argument(help="one_id or <type>:<value>")]) -> None:
    """Which person an identifier or an old one_id belongs to now."""
    server = _server()
    if server is not None:
        _print_json(server._call("GET", "/v1/identity/resolve", params={"ref": ref}))
        return
    with _local_store() as store:
        _print_json(service.resolve(store.cursor(), ref, workspace=_settings().workspace).to_dict())


@identity_app.command("explain")
@_reports_errors
def explain(
    ref: Annotated[str, typer.Argument(help="one_id or <type>:<value>")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """A person's graph: records, identifiers, why each edge exists, merge history."""
    server = _server()
    if server is not None:
        one_id = server._call("GET", "/v1/identity/resolve", params={"ref": ref})["one_id"]
        if one_id is None:
            err_console.print(f"no person for {ref}")
            raise typer.Exit(2)
        found = server._call("GET", f"/v1/identity/persons/{one_id}/graph")
    else:
        with _local_store() as store:
            found = service.explain(store.cursor(), ref, _settings().workspace)
    if as_json:
        _print_json(found)
        return
    console.print(f"[bold]{found['one_id']}[/bold]")
    edges = Table(title="edges (record → identifier)")
    for col in ("record", "source", "identifier", "status", "why"):
        edges.add_column(col)
    for e in found["edges"]:
        why = e["reason"] or (
            f"match weight {e['weight']:.1f}" if e["weight"] is not None else f"on {e['record_id']}"
        )
        edges.add_row(
            e["record_id"],
            e["source_id"] or "",
            f"{e['id_type']}:{e['id_value']}",
            e["status"],
            why,
        )
    console.print(edges)
    links = Table(title="links (identifier ↔ identifier, evidence)")
    for col in ("from", "to", "evidence record"):
        links.add_column(col)
    for link in found["links"]:
        links.add_row(
            f"{link['from']['id_type']}:{link['from']['id_value']}",
            f"{link['to']['id_type']}:{link['to']['id_value']}",
            link["evidence"]["record_id"],
        )
    console.print(links)
    if found["matches"]:
        matches = Table(title="probabilistic links")
        for col in ("pair", "records", "probability", "status", "fields"):
            matches.add_column(col)
        for m in found["matches"]:
            matches.add_row(
                m["pair_id"],
                f"{m['record_id_l']} ~ {m['record_id_r']}",
                f"{m['probability']:.4f}",
                m["status"],
                json.dumps(m["fields"]),
            )
        console.print(matches)
    history = Table(title="history")
    for col in ("#", "when", "action", "one_id", "other", "rule", "evidence"):
        history.add_column(col)
    for h in found["history"]:
        history.add_row(
            str(h["event_seq"]),
            h["occurred_at"],
            h["action"],
            h["one_id"] or "",
            h["other_one_id"] or "",
            h["rule"] or "",
            json.dumps(h["evidence"], ensure_ascii=False)[:80],
        )
    console.print(history)


@identity_app.command("split")
@_reports_errors
def split(
    id_ref: Annotated[str, typer.Argument(help="the identifier as <type>:<value>")],
    record: Annotated[
        str | None, typer.Option(help="remove only this record's edge to the identifier")
    ] = None,
    blocklist: Annotated[
        bool, typer.Option("--blocklist", help="blocklist the value everywhere")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="why (kept in the history)")] = None,
) -> None:
    """Unmerge: remove an identifier (or one record's edge to it), or blocklist the value."""
    id_type, id_value = service.parse_ref(id_ref)
    action = "blocklist" if blocklist else ("remove_edge" if record else "remove_identifier")
    body = {
        "action": action,
        "id_type": id_type,
        "id_value": id_value,
        "record_id": record,
        "reason": reason,
    }
    server = _server()
    if server is not None:
        report = server._call("POST", "/v1/identity/split", json=body)
    else:
        with _local_store() as store:
            report = service.split(
                store,
                action=action,
                id_type=id_type,
                id_value=id_value,
                record_id=record,
                reason=reason,
                actor=CLI_ACTOR,
                actor_role="admin",
                workspace=_settings().workspace,
                head_file=_head(),
            ).to_dict()
    console.print(
        f"{action}: {report['persons']:,} persons now ({report['splits']} split, "
        f"{report['merges']} merged)"
    )


@review_app.command("list")
@_reports_errors
def review_list(
    status: Annotated[str, typer.Option(help="pending, approved, rejected, auto, blocked")] = (
        "pending"
    ),
) -> None:
    """Pairs waiting for a decision (or decided ones)."""
    server = _server()
    if server is not None:
        pairs = server._call("GET", "/v1/identity/review", params={"status": status})
    else:
        with _local_store() as store:
            pairs = service.list_review(store.cursor(), status=status)
    table = Table(title=f"review queue ({status})")
    for col in ("pair", "person", "other", "probability", "fields", "reason"):
        table.add_column(col)
    for p in pairs:
        table.add_row(
            p["pair_id"],
            p["one_id_l"] or "",
            p["one_id_r"] or "",
            f"{p['probability']:.4f}",
            json.dumps(p["fields"]),
            p["reason"] or "",
        )
    console.print(table)


def _decide(pair_id: str, approve: bool) -> None:
    server = _server()
    verb = "approve" if approve else "reject"
    if server is not None:
        result = server._call("POST", f"/v1/identity/review/{pair_id}/{verb}")
    else:
        with _local_store() as store:
            result = service.decide_review(
                store,
                pair_id,
                approve=approve,
                actor=CLI_ACTOR,
                actor_role="admin",
                workspace=_settings().workspace,
                head_file=_head(),
            )
    console.print(f"pair {result['pair_id']}: {result['status']}")


@review_app.command("approve")
@_reports_errors
def review_approve(pair_id: str) -> None:
    """Merge the two persons of a pair."""
    _decide(pair_id, True)


@review_app.command("reject")
@_reports_errors
def review_reject(pair_id: str) -> None:
    """Keep the two persons apart; the pair is never proposed again."""
    _decide(pair_id, False)
