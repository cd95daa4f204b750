"""The demo chain generator: files as declared, the identity variety, dirt, determinism."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

from mecdp.demo.generator import DemoChain, generate_chain

MEMBERS = 300


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> DemoChain:
    return generate_chain(tmp_path_factory.mktemp("chain"), members=MEMBERS, seed=7)


def _rows(path: Path) -> list[dict[str, object]]:
    if path.suffix == ".csv":
        raw = path.read_bytes()
        encoding = "gbk" if path.stem == "pos_east" else "utf-8"
        text = raw.decode(encoding).encode("utf-8")
        opts = pacsv.ConvertOptions(column_types={}, strings_can_be_null=True)
        table = pacsv.read_csv(io.BytesIO(text), convert_options=opts)
        return [
            {k: (None if v is None else str(v)) for k, v in r.items()} for r in table.to_pylist()
        ]
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    wb = load_workbook(path, read_only=True)
    rows = list(wb.active.iter_rows(values_only=True))
    header = [str(h) for h in rows[0]]
    return [dict(zip(header, (*r, *[None] * len(header)), strict=False)) for r in rows[1:]]


def test_declared_files_exist_with_declared_row_counts(chain: DemoChain) -> None:
    assert len(chain.files) >= 15
    assert {f.path.suffix for f in chain.files} >= {".csv", ".jsonl", ".parquet", ".xlsx"}
    for f in chain.files:
        assert f.path.exists(), f.path
        assert len(_rows(f.path)) == f.rows, f.source
        assert re.fullmatch(r"[a-z][a-z0-9_]{1,62}", f.source)
        assert (Path(__file__).parents[2] / "mecdp/collect/mappings" / f"{f.mapping}.yaml").exists()
    assert len({f.source for f in chain.files}) == len(chain.files)
    assert chain.events_path.exists() and chain.truth_path.exists()
    assert 8 <= len(chain.stores) <= 12 and len(chain.catalog) >= 15


def test_gbk_pos_export(chain: DemoChain) -> None:
    raw = next(f for f in chain.files if f.source == "pos_east").path.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert "消费金额" in raw.decode("gbk")


def test_truth_covers_every_record(chain: DemoChain) -> None:
    truth = pq.read_table(chain.truth_path).to_pylist()
    refs = {t["ref"] for t in truth}
    assert len(refs) == len(truth)  # duplicates share one ref
    assert {t["kind"] for t in truth} >= {
        "orders",
        "appointments",
        "treatments",
        "interactions",
        "feedback",
        "contacts",
        "events",
    }
    pos = next(f for f in chain.files if f.source == "pos_cloud")
    for row in _rows(pos.path)[:50]:
        assert f"pos_cloud:{row['订单编号']}" in refs
    events = [json.loads(line) for line in chain.events_path.read_text("utf-8").splitlines()]
    for e in events:
        assert f"{e['_source']}:{e['messageId']}" in refs
    ids = [e["messageId"] for e in events]
    assert len(set(ids)) < len(ids)  # some exact replays
    assert {e["type"] for e in events} >= {"identify", "track", "page", "screen", "alias"}
    online = {t["person_id"] for t in truth if t["kind"] == "events"}
    assert 3 <= sum(t["kind"] == "events" for t in truth) / len(online) <= 6
    assert any(t["expect_quarantine"] for t in truth)


def test_identity_variety(chain: DemoChain) -> None:
    truth = {t["ref"]: t["person_id"] for t in pq.read_table(chain.truth_path).to_pylist()}
    members = _rows(next(f for f in chain.files if f.source == "crm_members").path)
    by_phone: dict[str, set[object]] = {}
    for m in members:
        if m["手机号"] and str(m["手机号"]).isdigit():
            by_phone.setdefault(str(m["手机号"]), set()).add(truth[f"crm_members:{m['会员ID']}"])
    assert any(len(people) > 1 for people in by_phone.values())  # a family sharing one phone
    assert any(m["手机号"] and m["备用手机号"] for m in members)  # two phones
    assert any(m["微信unionid"] and not m["手机号"] for m in members)  # WeChat-only member

    treatments = _rows(next(f for f in chain.files if f.source == "his_treatments").path)
    assert any(t["会员卡号"] and not t["手机号"] for t in treatments)  # member no. only
    cards = [str(t["身份证号"]) for t in treatments if t["身份证号"]]
    assert cards
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    for card in cards:
        assert (
            "10X98765432"[sum(int(c) * w for c, w in zip(card[:17], weights, strict=True)) % 11]
            == card[17]
        )

    leads = _rows(next(f for f in chain.files if f.source == "douyin_leads").path)
    lead_people = {
        truth[f"douyin_leads:{r['线索ID']}"] for r in leads if r["抖音用户ID"] and r["电话"]
    }
    buyers = {p for ref, p in truth.items() if ref.startswith(("pos_east:", "pos_cloud:"))}
    assert lead_people & buyers  # a Douyin lead who later buys in a store


def test_dirty_values_present(chain: DemoChain) -> None:
    rows = _rows(next(f for f in chain.files if f.source == "his_appointments").path)
    rows += _rows(next(f for f in chain.files if f.source == "his_treatments").path)
    phones = [str(r["手机号"]) for r in rows if r["手机号"]]
    assert any(not p.isascii() or not p.isdigit() for p in phones)
    pos = _rows(next(f for f in chain.files if f.source == "pos_cloud").path)
    amounts = [str(r["应收金额"]) for r in pos if r["应收金额"]]
    assert any("¥" in a or "," in a or "万" in a for a in amounts)
    times = [str(r["下单时间"]) for r in pos if r["下单时间"]]
    assert any("/" in t or "年" in t or "T" in t for t in times)
    assert len({tuple(r.items()) for r in pos}) < len(pos)  # exact duplicate rows


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    def digest(c: DemoChain) -> dict[str, str]:
        paths = [f.path for f in c.files if f.path.suffix != ".xlsx"]
        paths += [c.events_path, c.truth_path]
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}

    a = generate_chain(tmp_path / "a", members=120, seed=3)
    b = generate_chain(tmp_path / "b", members=120, seed=3)
    c = generate_chain(tmp_path / "c", members=120, seed=4)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)
