"""Unified profile: golden-record build, refresh, the 360° view, timeline pages, search.

* **Build.** `build_profiles` recomputes every person set-based (SQL in `build`, through the
  engine seam) and persists the outputs; `refresh_profiles(cur, one_ids)` runs the same SQL
  for a few persons inside the caller's transaction (the stream path). Each chosen trait
  value keeps its source, record and time; every change is appended to
  ``profile_trait_history``.
* **Read.** `find_person` resolves ``<id_type>:<value>`` or a one_id (old ones redirect)
  through OneID; `profile_view` returns identity, traits with sources, identifiers by type,
  course cards, consents, tags/scores (when those tables exist) and optionally the first
  timeline page; `timeline_page` pages the merged timeline by cursor with kind and channel
  filters. Values come back plain: `mask_view` / `mask_hit` mask them for the caller's role,
  and the caller audits unmasked reads.
* Treatments (sensitive medical data) appear in a timeline only when the caller says it may
  see them (`medical=True`: a role that may read personal data unmasked, for a declared
  purpose) **and** the member has the separate consent (`consent.may(..., sensitive=True)`).
"""

from __future__ import annotations

import base64
import contextlib
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from mecdp.compute.queries import visible_tags
from mecdp.config import Settings
from mecdp.errors import InputError, NotFound
from mecdp.identity import service as identity
from mecdp.identity.config import IdentityRules
from mecdp.identity.models import Resolution
from mecdp.privacy import consent
from mecdp.privacy.masking import mask_value
from mecdp.profiles import build, lookup, personal
from mecdp.profiles.config import ProfileRules
from mecdp.profiles.models import (
    SEARCH_FIELDS,
    TIMELINE_KINDS,
    BuildReport,
    SearchHit,
    TimelinePage,
)
from mecdp.store import Store
from mecdp.store.engine import DuckDBEngine

Progress = Callable[[str], None]
MAX_PAGE = 200
DEFAULT_PAGE = 20
# Identifier type -> masking kind (others are platform ids: kind "identifier").
ID_MASK_KINDS = {"phone": "phone", "email": "email"}
NEVER_PLAIN = frozenset({"id_card_hash"})


def _noop(_: str) -> None:
    return None


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    return str(value.isoformat()) if hasattr(value, "isoformat") else str(value)


# --------------------------------------------------------------------------- build


def _register_rules(engine: DuckDBEngine, rules: ProfileRules) -> None:
    engine.register_arrow(build.TRAIT_RULES, rules.trait_table())
    engine.register_arrow(build.TRAIT_PRIORITY, rules.priority_table())
    engine.register_arrow(build.LEVELS, rules.level_table())


def _run(cur: duckdb.DuckDBPyConnection, rules: ProfileRules, one_ids: list[str] | None) -> None:
    engine = DuckDBEngine(cur)
    _register_rules(engine, rules)
    if one_ids is not None:
        engine.register_arrow(build.SCOPE, pa.table({"one_id": pa.array(one_ids, pa.string())}))
    build.run_build(engine, scoped=one_ids is not None)


def _count(cur: duckdb.DuckDBPyConnection, table: str) -> int:
    row = cur.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def _persist(cur: duckdb.DuckDBPyConnection, scoped: bool) -> int:
    """Write the outputs over the persons built; returns the number of trait changes."""
    now = _now()
    in_scope = f"WHERE one_id IN (SELECT one_id FROM {build.SCOPE})" if scoped else ""
    and_scope = f"AND o.one_id IN (SELECT one_id FROM {build.SCOPE})" if scoped else ""
    before = _count(cur, "profile_trait_history")
    cur.execute(
        """
        INSERT INTO profile_trait_history
        SELECT n.one_id, n.trait, n.value, n.value_key, n.rule, n.source_id, n.record_id,
               n.observed_at, ?
        FROM pf_out_traits n
        LEFT JOIN profile_traits o ON o.one_id = n.one_id AND o.trait = n.trait
        WHERE o.value_key IS NULL OR o.value_key <> n.value_key
        """,
        [now],
    )
    cur.execute(
        f"""
        INSERT INTO profile_trait_history
        SELECT o.one_id, o.trait, NULL, NULL, NULL, NULL, NULL, NULL, ?
        FROM profile_traits o
        WHERE NOT EXISTS (SELECT 1 FROM pf_out_traits n
                          WHERE n.one_id = o.one_id AND n.trait = o.trait) {and_scope}
        """,
        [now],
    )
    changes = _count(cur, "profile_trait_history") - before
    for table, output in (
        ("profile_traits", "pf_out_traits"),
        ("profile_identifiers", "pf_out_identifiers"),
        ("profile_timeline", build.TIMELINE),
        ("profile_course_cards", "pf_out_cards"),
    ):
        cur.execute(f"DELETE FROM {table} {in_scope}")
        cur.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {output}")
    cur.execute(f"DELETE FROM profiles {in_scope}")
    cur.execute(
        "INSERT INTO profiles BY NAME SELECT *, CAST(? AS TIMESTAMP) AS built_at "
        "FROM pf_out_profiles",
        [now],
    )
    built = lookup.DocumentSources(
        profiles="pf_out_profiles",
        traits="pf_out_traits",
        identifiers="pf_out_identifiers",
        cards="pf_out_cards",
        built_at=f"TIMESTAMP '{now.isoformat(sep=' ')}'",
    )
    lookup.write_documents(cur, build.SCOPE if scoped else None, built)
    return changes


def _cleanup(cur: duckdb.DuckDBPyConnection, scoped: bool) -> None:
    engine = DuckDBEngine(cur)
    build.drop_outputs(engine)
    for name in (build.TRAIT_RULES, build.TRAIT_PRIORITY, build.LEVELS):
        cur.unregister(name)
    if scoped:
        cur.unregister(build.SCOPE)


def build_profiles(
    store: Store,
    *,
    workspace: Path | None = None,
    rules: ProfileRules | None = None,
    progress: Progress = _noop,
) -> BuildReport:
    """Full rebuild of every golden record, its traits, identifiers, timeline and cards."""
    rules = rules or ProfileRules.load(workspace)
    started = time.perf_counter()
    with store.transaction() as cur:
        progress("computing golden records")
        _run(cur, rules, None)
        progress("writing profiles")
        changes = _persist(cur, scoped=False)
        report = _report(cur, changes, started, "full")
        _cleanup(cur, scoped=False)
    return report


def refresh_profiles(
    cur: duckdb.DuckDBPyConnection,
    one_ids: Iterable[str],
    *,
    rules: ProfileRules | None = None,
    workspace: Path | None = None,
) -> BuildReport:
    """Recompute the given persons inside the caller's transaction (the stream path).

    Pass the one_ids a stitch or merge touched (merged-away ids too: their rows go away).
    """
    ids = sorted({str(i) for i in one_ids})
    started = time.perf_counter()
    if not ids:
        return BuildReport(0, 0, 0, 0, 0, 0, 0.0, "refresh")
    rules = rules or ProfileRules.load(workspace)
    _run(cur, rules, ids)
    changes = _persist(cur, scoped=True)
    report = _report(cur, changes, started, "refresh")
    _cleanup(cur, scoped=True)
    return report


def _report(
    cur: duckdb.DuckDBPyConnection, changes: int, started: float, scope: str
) -> BuildReport:
    return BuildReport(
        persons=_count(cur, "pf_out_profiles"),
        traits=_count(cur, "pf_out_traits"),
        trait_changes=changes,
        identifiers=_count(cur, "pf_out_identifiers"),
        timeline_rows=_count(cur, build.TIMELINE),
        course_cards=_count(cur, "pf_out_cards"),
        seconds=round(time.perf_counter() - started, 3),
        scope=scope,
    )


# --------------------------------------------------------------------------- lookups

_RULES_CACHE: dict[str, IdentityRules] = {}


def _identity_rules(settings: Settings) -> IdentityRules:
    key = str(settings.workspace)
    found = _RULES_CACHE.get(key)
    if found is None:
        found = IdentityRules.load(settings.workspace)
        _RULES_CACHE[key] = found
    return found


def _resolve(
    cur: duckdb.DuckDBPyConnection, settings: Settings, id_type: str, value: str
) -> Resolution:
    """OneID's answer for a typed identifier (normalised; OneID blinds phones and emails)."""
    return identity.resolve(
        cur,
        f"{id_type}:{personal.normalise(id_type, value)}",
        rules=_identity_rules(settings),
        workspace=settings.workspace,
    )


def fast_person(
    cur: duckdb.DuckDBPyConnection, settings: Settings, id_type: str, value: str
) -> str | None:
    """The hot path of a lookup: one indexed query on the profile tables (a built profile, or
    an identifier of one built profile). None: ask OneID for the full answer (redirected
    one_ids, household or blocklisted identifiers, persons built before the last merge)."""
    if id_type == "one_id":
        row = cur.execute("SELECT one_id FROM profiles WHERE one_id = ?", [value]).fetchone()
        return str(row[0]) if row else None
    for stored in reversed(personal.stored_identifier(settings, id_type, value)):
        rows = cur.execute(
            "SELECT one_id, id_type FROM profile_identifiers WHERE id_value = ?", [stored]
        ).fetchall()
        persons = {str(r[0]) for r in rows if r[1] == id_type}
        if len(persons) == 1:
            return persons.pop()
    return None


def parse_ref(ref: str) -> tuple[str, str]:
    """'OID00000001' -> ('one_id', ...); 'phone:138...' -> ('phone', '138...')."""
    return identity.parse_ref(ref)


def find_person(cur: duckdb.DuckDBPyConnection, settings: Settings, ref: str) -> str:
    """The current one_id behind a one_id (old ones redirect) or ``<id_type>:<value>``.

    NotFound when nobody holds it; a household (ambiguous) identifier is a NotFound that
    names the candidate persons.
    """
    id_type, value = parse_ref(ref)
    fast = fast_person(cur, settings, id_type, value)
    if fast is not None:
        return fast
    if id_type == "one_id":
        found = identity.resolve(cur, value)
        if found.one_id is None:
            raise NotFound(f"no person {value!r}", field="ref", value=ref)
        return found.one_id
    found = _resolve(cur, settings, id_type, value)
    if found.one_id is not None:
        return found.one_id
    candidates = found.candidates
    if candidates:
        raise NotFound(
            f"{id_type} is shared by several persons (household); give a one_id",
            field="ref",
            candidates=list(candidates),
        )
    raise NotFound(f"no person with this {id_type}", field="ref", id_type=id_type)


_PROFILE_COLUMNS = (
    "one_id",
    "name",
    "gender",
    "birthday",
    "city",
    "home_store",
    "consultant",
    "member_level",
    "preferred_channel",
    "first_seen",
    "last_seen",
    "first_order_at",
    "last_order_at",
    "orders",
    "visits",
    "total_spend_fen",
    "avg_spend_fen",
    "records",
    "built_at",
)
# the profile page's summary card: the derived columns, with the home store's name
_SUMMARY_FIELDS = (
    "home_store",
    "home_store_name",
    *_PROFILE_COLUMNS[_PROFILE_COLUMNS.index("consultant") :],
)
_PROFILE_SQL = (
    f"SELECT {', '.join('p.' + c for c in _PROFILE_COLUMNS)}, s.name AS home_store_name "
    "FROM profiles p LEFT JOIN stores s ON s.store_code = p.home_store WHERE p.one_id = ?"
)


def get_profile(cur: duckdb.DuckDBPyConnection, settings: Settings, one_id: str) -> dict[str, Any]:
    """The golden record (plain values); NotFound before the person's first build."""
    row = cur.execute(_PROFILE_SQL, [one_id]).fetchone()
    if row is None:
        raise NotFound(
            f"person {one_id} has no profile yet (run `mecdp profiles build`)",
            field="one_id",
            value=one_id,
        )
    out = dict(zip((*_PROFILE_COLUMNS, "home_store_name"), row, strict=True))
    out["name"] = personal.reveal(settings, out["name"])
    for key in ("first_seen", "last_seen", "first_order_at", "last_order_at", "built_at"):
        out[key] = _iso(out[key])
    out["birthday"] = _iso(out["birthday"])
    return out


def person_store(cur: duckdb.DuckDBPyConnection, one_id: str) -> str | None:
    """The store whose consultants serve this person: the golden record's home store, else
    the store OneID names (most records)."""
    row = cur.execute("SELECT home_store FROM profiles WHERE one_id = ?", [one_id]).fetchone()
    if row and row[0]:
        return str(row[0])
    return identity.person_store(cur, one_id)


def traits(cur: duckdb.DuckDBPyConnection, settings: Settings, one_id: str) -> list[dict[str, Any]]:
    rows = cur.execute(
        "SELECT trait, value, rule, source_id, record_id, observed_at, candidates "
        "FROM profile_traits WHERE one_id = ? ORDER BY trait",
        [one_id],
    ).fetchall()
    return [
        {
            "trait": t,
            "value": personal.reveal(settings, v) if t == "name" else v,
            "rule": r,
            "source_id": s,
            "record_id": rec,
            "observed_at": _iso(at),
            "candidates": int(n),
        }
        for t, v, r, s, rec, at, n in rows
    ]


def trait_history(
    cur: duckdb.DuckDBPyConnection, settings: Settings, one_id: str
) -> list[dict[str, Any]]:
    rows = cur.execute(
        "SELECT trait, value, rule, source_id, observed_at, changed_at "
        "FROM profile_trait_history WHERE one_id = ? ORDER BY changed_at, trait",
        [one_id],
    ).fetchall()
    return [
        {
            "trait": t,
            "value": personal.reveal(settings, v) if t == "name" else v,
            "rule": r,
            "source_id": s,
            "observed_at": _iso(at),
            "changed_at": _iso(ch),
        }
        for t, v, r, s, at, ch in rows
    ]


def identifiers(
    cur: duckdb.DuckDBPyConnection, settings: Settings, one_id: str
) -> dict[str, list[dict[str, Any]]]:
    """The person's identifiers grouped by type, most used first (plain values)."""
    rows = cur.execute(
        "SELECT id_type, id_value, id_value_enc, records, first_seen, last_seen "
        "FROM profile_identifiers WHERE one_id = ? "
        "ORDER BY id_type, records DESC, last_seen DESC NULLS LAST, id_value",
        [one_id],
    ).fetchall()
    out: dict[str, list[dict[str, Any]]] = {}
    for id_type, value, enc, n, first, last in rows:
        out.setdefault(str(id_type), []).append(
            {
                "value": personal.reveal_identifier(settings, str(value), enc),
                "records": int(n),
                "first_seen": _iso(first),
                "last_seen": _iso(last),
            }
        )
    return out


def course_cards(cur: duckdb.DuckDBPyConnection, one_id: str) -> list[dict[str, Any]]:
    rows = cur.execute(
        "SELECT item_code, item_name, sessions_bought, sessions_used, sessions_left, "
        "first_purchase_at, last_purchase_at FROM profile_course_cards WHERE one_id = ? "
        "ORDER BY last_purchase_at DESC, item_code",
        [one_id],
    ).fetchall()
    return [
        {
            "item_code": c,
            "item_name": n,
            "sessions_bought": int(b),
            "sessions_used": int(u),
            "sessions_left": int(left),
            "first_purchase_at": _iso(f),
            "last_purchase_at": _iso(la),
        }
        for c, n, b, u, left, f, la in rows
    ]


def member_ref(one_id: str) -> str:
    return identity.member_ref(one_id)


def may_see_treatments(cur: duckdb.DuckDBPyConnection, one_id: str) -> bool:
    """The member's separate consent to process sensitive medical data (单独同意)."""
    return consent.may(
        cur, member_ref(one_id), consent.SENSITIVE_PURPOSE, "*", sensitive=True
    ).allowed


def _view_identifiers(
    settings: Settings, rows: list[dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Stored identifier rows (ordered by type, most used first) grouped by type, plain."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        value = personal.reveal_identifier(settings, str(r["id_value"]), r["id_value_enc"])
        out.setdefault(str(r["id_type"]), []).append(
            {
                "value": value,
                "records": int(r["records"]),
                "first_seen": r["first_seen"],
                "last_seen": r["last_seen"],
            }
        )
    return out


def profile_view(
    cur: duckdb.DuckDBPyConnection,
    settings: Settings,
    one_id: str,
    *,
    medical: bool = False,
    timeline_size: int = 0,
) -> dict[str, Any]:
    """The 360° view of one person (plain values; mask with `mask_view`): identity, summary,
    traits with sources, identifiers, course cards, current consents, tags, scores and -
    when `medical` (the caller may see sensitive medical data) and the member gave the
    separate consent - treatment due dates (else ``treatment_due`` is None, and tags derived
    from treatments are left out)."""
    ref = member_ref(one_id)
    due = medical and may_see_treatments(cur, one_id)
    parts = lookup.read_parts(cur, one_id, ref, due=due)
    if parts.document is None:
        raise NotFound(
            f"person {one_id} has no profile yet (run `mecdp profiles build`)",
            field="one_id",
            value=one_id,
        )
    profile = parts.document["profile"]
    ids = _view_identifiers(settings, parts.document["identifiers"])
    phones = ids.get("phone") or []
    emails = ids.get("email") or []
    view: dict[str, Any] = {
        "one_id": one_id,
        "member_ref": ref,
        "merged_from": parts.document["merged_from"],
        "identity": {
            "name": personal.reveal(settings, profile["name"]),
            "gender": profile["gender"],
            "birthday": profile["birthday"],
            "city": profile["city"],
            "phone": phones[0]["value"] if phones else None,
            "email": emails[0]["value"] if emails else None,
        },
        "summary": {k: profile[k] for k in _SUMMARY_FIELDS},
        "traits": [
            {**t, "value": personal.reveal(settings, t["value"])} if t["trait"] == "name" else t
            for t in parts.document["traits"]
        ],
        "identifiers": ids,
        "course_cards": parts.document["course_cards"],
        "consents": parts.consents,
        "tags": visible_tags(parts.tags, due),
        "scores": parts.scores,
        "treatment_due": parts.treatment_due,
    }
    if timeline_size:
        view["timeline"] = timeline_page(cur, one_id, size=timeline_size, medical=medical).to_dict()
    return view


def view_by_ref(
    cur: duckdb.DuckDBPyConnection,
    settings: Settings,
    ref: str,
    *,
    medical: bool = False,
    timeline_size: int = 0,
) -> dict[str, Any]:
    """`profile_view` of the person behind `ref` (see `find_person`). A one_id goes straight
    to its document (one statement for the whole lookup); OneID is asked only when that
    misses (a merged one_id redirects, an unknown one is a NotFound)."""
    id_type, value = parse_ref(ref)
    if id_type == "one_id":
        with contextlib.suppress(NotFound):
            return profile_view(cur, settings, value, medical=medical, timeline_size=timeline_size)
    one_id = find_person(cur, settings, ref)
    return profile_view(cur, settings, one_id, medical=medical, timeline_size=timeline_size)


# --------------------------------------------------------------------------- timeline

_CURSOR = re.compile(r"^(\d{4}-\d\d-\d\dT[\d:.]+)\|(.{1,300})$")


def encode_cursor(occurred_at: datetime, record_id: str) -> str:
    text = f"{occurred_at.isoformat()}|{record_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        m = _CURSOR.match(text)
        if m is None:
            raise ValueError(text)
        return datetime.fromisoformat(m.group(1)), m.group(2)
    except ValueError:
        raise InputError(
            "cursor is not one this API returned", field="cursor", rule="timeline.cursor"
        ) from None


def timeline_page(
    cur: duckdb.DuckDBPyConnection,
    one_id: str,
    *,
    cursor: str | None = None,
    size: int = DEFAULT_PAGE,
    kinds: Iterable[str] = (),
    channels: Iterable[str] = (),
    medical: bool = False,
) -> TimelinePage:
    """One page of the merged timeline, newest first.

    `medical`: the caller may see sensitive medical data; treatments are listed only then
    and only with the member's separate consent.
    """
    if not 1 <= size <= MAX_PAGE:
        raise InputError(
            f"size must be between 1 and {MAX_PAGE}", field="size", value=size, rule="page.size"
        )
    kinds = tuple(dict.fromkeys(kinds))
    channels = tuple(dict.fromkeys(channels))
    unknown = [k for k in kinds if k not in TIMELINE_KINDS]
    if unknown:
        raise InputError(
            f"unknown timeline kind {unknown[0]!r}; one of: {', '.join(TIMELINE_KINDS)}",
            field="kind",
            value=unknown[0],
            rule="timeline.kind",
        )
    sensitive = medical and may_see_treatments(cur, one_id)
    where = ["one_id = ?"]
    params: list[Any] = [one_id]
    if not sensitive:
        where.append("NOT sensitive")
    if kinds:
        where.append(f"kind IN ({', '.join('?' * len(kinds))})")
        params.extend(kinds)
    if channels:
        where.append(f"channel IN ({', '.join('?' * len(channels))})")
        params.extend(channels)
    if cursor:
        at, rec = decode_cursor(cursor)
        where.append("(occurred_at < ? OR (occurred_at = ? AND record_id < ?))")
        params.extend([at, at, rec])
    rows = cur.execute(
        "SELECT occurred_at, kind, type, channel, store_code, title, amount_fen, score, "
        f"record_id, source_id FROM profile_timeline WHERE {' AND '.join(where)} "
        "ORDER BY occurred_at DESC, record_id DESC LIMIT ?",
        [*params, size + 1],
    ).fetchall()
    more = len(rows) > size
    rows = rows[:size]
    items = [
        {
            "occurred_at": _iso(r[0]),
            "kind": r[1],
            "type": r[2],
            "channel": r[3],
            "store_code": r[4],
            "title": r[5],
            "amount_fen": r[6],
            "score": r[7],
            "record_id": r[8],
            "source_id": r[9],
        }
        for r in rows
    ]
    next_cursor = encode_cursor(rows[-1][0], str(rows[-1][8])) if more and rows else None
    return TimelinePage(items, next_cursor, size, kinds, channels, sensitive)


def timeline_channels(cur: duckdb.DuckDBPyConnection, one_id: str) -> list[str]:
    rows = cur.execute(
        "SELECT DISTINCT channel FROM profile_timeline WHERE one_id = ? AND channel IS NOT NULL "
        "AND NOT sensitive ORDER BY 1",
        [one_id],
    ).fetchall()
    return [str(r[0]) for r in rows]


# --------------------------------------------------------------------------- search

_CJK = re.compile(r"[\u3400-\u9fff]")
_PHONE = re.compile(r"^\+?[\d\s-]{7,20}$")
MAX_HITS = 20


def guess_field(query: str) -> str:
    """What a search box query most likely is: one_id, phone, name or member_no."""
    q = query.strip()
    if q.startswith(identity.ONE_ID_PREFIX) and q[3:].isdigit():
        return "one_id"
    if _CJK.search(q):
        return "name"
    digits = re.sub(r"\D", "", q)
    if _PHONE.match(q) and (len(digits) == 11 and digits.startswith("1") or q.startswith("+")):
        return "phone"
    return "member_no"


def search_members(
    cur: duckdb.DuckDBPyConnection, settings: Settings, query: str, *, field: str = "auto"
) -> list[SearchHit]:
    """Persons by phone, name, member number, WeChat or Douyin id, or one_id (plain values).

    `field`: auto (guess from the query), one_id, phone, name, member_no, wechat, douyin.
    """
    q = query.strip()
    if not q or len(q) > 200:
        raise InputError("type 1-200 characters to search", field="q", rule="search.query")
    if field == "auto":
        field = guess_field(q)
    found: dict[str, str] = {}
    if field == "one_id":
        with contextlib.suppress(NotFound):
            found[find_person(cur, settings, q)] = "one_id"
    elif field == "name":
        keys = personal.lookup_values(settings, "name", q)
        rows = cur.execute(
            f"SELECT one_id FROM profiles WHERE name_key IN ({', '.join('?' * len(keys))}) "
            "ORDER BY last_seen DESC NULLS LAST, one_id LIMIT ?",
            [*keys, MAX_HITS],
        ).fetchall()
        found.update((str(r[0]), "name") for r in rows)
    elif field in SEARCH_FIELDS:
        for id_type in SEARCH_FIELDS[field]:
            res = _resolve(cur, settings, id_type, q)
            for one_id in (res.one_id,) if res.one_id else res.candidates:
                found.setdefault(one_id, id_type)
    else:
        raise InputError(
            f"unknown search field {field!r}; one of: auto, one_id, name, "
            f"{', '.join(SEARCH_FIELDS)}",
            field="by",
            value=field,
            rule="search.field",
        )
    hits = []
    for one_id, matched in list(found.items())[:MAX_HITS]:
        try:
            p = get_profile(cur, settings, one_id)
        except NotFound:
            continue
        phones = identifiers(cur, settings, one_id).get("phone") or []
        hits.append(
            SearchHit(
                one_id=one_id,
                name=p["name"],
                phone=phones[0]["value"] if phones else None,
                gender=p["gender"],
                member_level=p["member_level"],
                home_store=p["home_store"],
                last_seen=p["last_seen"],
                matched_by=matched,
                extra={"home_store_name": p["home_store_name"]},
            )
        )
    return hits


# --------------------------------------------------------------------------- masking


def mask_identifier(id_type: str, value: str, visible: frozenset[str]) -> str:
    kind = ID_MASK_KINDS.get(id_type, "identifier")
    if kind in visible and id_type not in NEVER_PLAIN:
        return value
    masked: str = mask_value(kind, value)
    return masked


def _mask_name(value: Any, visible: frozenset[str]) -> Any:
    return value if "name" in visible else mask_value("name", value)


def mask_view(view: dict[str, Any], visible: frozenset[str]) -> dict[str, Any]:
    """A copy of a 360° view with personal values masked unless their kind is `visible`."""
    out = dict(view)
    ident = dict(view["identity"])
    ident["name"] = _mask_name(ident["name"], visible)
    if ident["phone"] is not None:
        ident["phone"] = mask_identifier("phone", ident["phone"], visible)
    if ident["email"] is not None:
        ident["email"] = mask_identifier("email", ident["email"], visible)
    out["identity"] = ident
    out["traits"] = [
        {**t, "value": _mask_name(t["value"], visible)} if t["trait"] == "name" else t
        for t in view["traits"]
    ]
    out["identifiers"] = {
        id_type: [{**i, "value": mask_identifier(id_type, i["value"], visible)} for i in items]
        for id_type, items in view["identifiers"].items()
    }
    out["masked"] = not visible
    return out


def mask_history(items: list[dict[str, Any]], visible: frozenset[str]) -> list[dict[str, Any]]:
    return [
        {**h, "value": _mask_name(h["value"], visible)} if h["trait"] == "name" else h
        for h in items
    ]


def mask_hit(hit: SearchHit, visible: frozenset[str]) -> dict[str, Any]:
    d = hit.to_dict()
    d["name"] = _mask_name(d["name"], visible)
    if d["phone"]:
        d["phone"] = mask_identifier("phone", d["phone"], visible)
    return d
