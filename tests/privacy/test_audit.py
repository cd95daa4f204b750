"""The audit chain: append, verify, and detect edits, deletions and truncation."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb

from mecdp.config import Settings
from mecdp.privacy.audit import AuditEntry, audit, list_audit, verify_audit
from mecdp.store import Store, open_store


def _fill(store: Store, head: Path, n: int = 5) -> None:
    for i in range(n):
        audit(
            store,
            AuditEntry(
                actor="wang.consultant",
                actor_role="consultant",
                action="personal_data.read_unmasked",
                target=f"contacts:r{i}",
                member_refs=[f"record:r{i}"],
                purpose="service",
            ),
            head_file=head,
        )


def test_chain_verifies_and_lists_by_member(settings: Settings, store: Store) -> None:
    head = settings.secrets_dir / "audit.head"
    _fill(store, head)
    result = verify_audit(store.cursor(), head_file=head)
    assert result.ok and result.rows == 5
    rows = list_audit(store.cursor(), member_ref="record:r3")
    assert [r["seq"] for r in rows] == [4]
    assert rows[0]["member_refs"] == ["record:r3"] and rows[0]["purpose"] == "service"


def test_concurrent_appends_stay_one_linear_chain(settings: Settings, store: Store) -> None:
    head = settings.secrets_dir / "audit.head"

    def work() -> None:
        _fill(store, head, 10)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert verify_audit(store.cursor(), head_file=head).ok
    assert store.cursor().execute("SELECT count(*) FROM audit_log").fetchone() == (40,)


def test_editing_a_row_with_plain_sql_is_detected(settings: Settings, store: Store) -> None:
    head = settings.secrets_dir / "audit.head"
    _fill(store, head)
    store.close()
    con = duckdb.connect(str(settings.db_path))
    con.execute("UPDATE audit_log SET actor = 'nobody' WHERE seq = 3")
    con.close()
    reopened = open_store(settings.db_path)
    try:
        result = verify_audit(reopened.cursor(), head_file=head)
    finally:
        reopened.close()
    assert not result.ok and result.first_bad_seq == 3
    assert "row 3 was changed" in (result.reason or "")


def test_deleting_rows_is_detected(settings: Settings, store: Store) -> None:
    head = settings.secrets_dir / "audit.head"
    _fill(store, head)
    cur = store.cursor()
    cur.execute("DELETE FROM audit_log WHERE seq = 2")
    result = verify_audit(cur, head_file=head)
    assert not result.ok and result.first_bad_seq == 2
    cur.execute("DELETE FROM audit_log WHERE seq >= 2")  # cut the tail: the chain alone is fine
    assert verify_audit(cur).ok
    truncated = verify_audit(cur, head_file=head)
    assert not truncated.ok and "audit.head" in (truncated.reason or "")
