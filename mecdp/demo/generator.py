"""Synthetic clinic-chain data: a seeded, vectorised generator of every source a chain has.

`generate_chain(out_dir, members, seed)` writes one file per bulk source (CSV in UTF-8 and
GBK, XLSX, JSONL, Parquet), one JSONL file of tracking-SDK events (Segment spec), and the
truth: which true person each record is about.

Truth reference scheme (`truth.parquet`, columns `ref`, `person_id`, `kind`, `source`,
`expect_quarantine`):

- a file row is referenced as ``"<source>:<natural key>"``: the source name of its
  `DemoFile` and the value of the record kind's key field (`order_no`, `appointment_no`,
  `treatment_no`, `interaction_no`, `response_no`, `contact_no`) exactly as written in the
  file. Every demo file carries its key column, so no row is referenced by a row hash;
  exact duplicate rows share one ref.
- an event is referenced as ``"<event source>:<messageId>"``; replayed messages share one ref.
- `person_id` is the true person (``P0000001``...), the same across all sources.
- `expect_quarantine` is true for rows deliberately missing a required value.

A cleaned record's `record_id` is built the same way (source + natural key), so an
identity-accuracy test joins `truth.ref` to `record_id` directly.

The chain (fixed "today" = 2026-11-20, so output is reproducible): 10 clinics in six
cities, a 19-item catalog, members in behaviour segments (VIP 高消费, regular 常客, promo
促销驱动, trial 尝鲜, course 疗程卡, dormant 休眠, WeChat-only 纯微信), prospects who only
follow and comment on social media or leave leads, families sharing one phone, members
with two phones, typos (同音字, swapped characters, swapped day/month), and a few percent of
dirty values in every source.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mecdp.demo import reference as ref

TODAY = np.datetime64("2026-11-20T00:00:00", "s")
"""The demo's fixed "today" (local time, Asia/Shanghai)."""
HISTORY_DAYS = 3 * 365
DAY = 86_400
UTC_OFFSET = 8 * 3600
MP_APPID = "wx8f3a1c2b9d7e6f01"  # the chain's mini-program
OA_APPID = "wx2b7c9d1e4f6a8b03"  # the chain's official account

SEGMENTS = ("vip", "regular", "promo", "trial", "course", "dormant", "wechat_only")
SEGMENT_SHARE = (0.03, 0.27, 0.18, 0.24, 0.12, 0.13, 0.03)
PROSPECT = len(SEGMENTS)  # segment code of non-members

_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_HEX = "0123456789abcdef"
_FULLWIDTH_DIGITS = str.maketrans("0123456789", "０１２３４５６７８９")


@dataclass(frozen=True)
class DemoFile:
    path: Path  # the written file
    mapping: str  # shipped mapping name (yaml stem) to import it with
    source: str  # source name to register, e.g. "pos_east"
    channel: str  # source channel code
    rows: int


@dataclass(frozen=True)
class DemoChain:
    out_dir: Path
    files: list[DemoFile]  # bulk sources, to import with the file importer
    event_sources: list[tuple[str, str]]  # (source name, channel) of tracking-SDK sources
    events_path: Path  # JSONL: one Segment-spec message per line, plus "_source"
    truth_path: Path  # Parquet: record ref -> true person id
    stores: list[dict[str, object]]  # rows for the `stores` table
    catalog: list[dict[str, object]]  # rows for the `catalog` table


EVENT_SOURCES: list[tuple[str, str]] = [
    ("website", "web"),
    ("mini_program", "wechat_mp"),
    ("h5_landing", "h5"),
]


# --------------------------------------------------------------------------- small helpers


def _s(values: np.ndarray | Sequence[object]) -> pa.Array:
    return pa.array(values, type=pa.string())


def _join(*parts: pa.Array | str) -> pa.Array:
    """Element-wise string concatenation; a null part makes the result null."""
    return pc.binary_join_element_wise(*parts, "")


def _num(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _pad(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(_num(values), width=width, padding="0")


def _ts(secs: np.ndarray, fmt: str = "%Y-%m-%d %H:%M:%S") -> pa.Array:
    """Format epoch seconds (pc.strftime is ~20x slower than a cast, so only these formats)."""
    text = pc.cast(pa.array(np.asarray(secs).astype("datetime64[s]")), pa.string())
    if fmt == "%Y-%m-%d %H:%M:%S":
        return text
    if fmt == "%Y%m%d":
        return pc.replace_substring(pc.utf8_slice_codeunits(text, 0, 10), "-", "")
    if fmt == "%y%m%d":
        return pc.replace_substring(pc.utf8_slice_codeunits(text, 2, 10), "-", "")
    if fmt == "%Y-%m-%dT%H:%M:%S":
        return pc.replace_substring(text, " ", "T")
    if fmt == "%Y-%m-%dT%H:%M:%S+08:00":
        return _join(pc.replace_substring(text, " ", "T"), "+08:00")
    raise ValueError(fmt)


def _date(days: np.ndarray) -> pa.Array:
    """'YYYY-MM-DD' for datetime64[D] values."""
    return pc.utf8_slice_codeunits(_ts(days.astype("datetime64[s]").astype(np.int64)), 0, 10)


def _null_where(arr: pa.Array, mask: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(mask), pa.nulls(len(arr), pa.string()), arr)


def _repeat(value: str, n: int) -> pa.Array:
    return pa.array([value], pa.string()).take(pa.array(np.zeros(n, dtype=np.int64)))


def _tokens(rng: np.random.Generator, n: int, length: int, alphabet: str = _ALNUM) -> np.ndarray:
    table = np.frombuffer(alphabet.encode("ascii"), dtype=np.uint8)
    codes = np.ascontiguousarray(table[rng.integers(0, len(alphabet), (n, length))])
    return codes.view(f"S{length}").ravel().astype(f"U{length}")


def _pick(
    rng: np.random.Generator, n: int, options: Sequence[str], p: Sequence[float] | None = None
) -> pa.Array:
    idx = rng.choice(len(options), size=n, p=None if p is None else np.asarray(p) / np.sum(p))
    return pa.array(np.asarray(options, dtype=object)[idx], type=pa.string())


def _mangle(
    rng: np.random.Generator, arr: pa.Array, rate: float, fn: Callable[[str, int], str | None]
) -> pa.Array:
    """Replace about `rate` of the non-null values by `fn(value, random int)`."""
    mask = (rng.random(len(arr)) < rate) & ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False))
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return arr
    values = arr.take(pa.array(idx)).to_pylist()
    draws = rng.integers(0, 1 << 30, len(idx)).tolist()
    new = [fn(v, d) for v, d in zip(values, draws, strict=True)]
    return pc.replace_with_mask(arr, pa.array(mask), pa.array(new, type=pa.string()))


def _dirty_phone(phone: str, r: int) -> str | None:
    """A phone as people type it: spaces, +86, 0086, dashes, full-width digits, or invalid."""
    k = r % 10
    if k == 0:
        return f"{phone[:3]} {phone[3:7]} {phone[7:]}"
    if k == 1:
        return f"+86-{phone[:3]}-{phone[3:7]}-{phone[7:]}"
    if k == 2:
        return "0086" + phone
    if k == 3:
        return phone.translate(_FULLWIDTH_DIGITS)
    if k == 4:
        return f"+86 {phone}"
    if k == 5:
        return f"{phone[:3]}-{phone[3:7]}-{phone[7:]}"
    if k == 6:
        return f" {phone} "
    if k == 7:
        return phone[:10]  # a digit lost: invalid
    if k == 8:
        return phone[:3] + "****" + phone[7:]  # masked: invalid
    return "86" + phone


def _dirty_ts(value: str, r: int) -> str | None:
    """A local 'YYYY-MM-DD HH:MM:SS' written another way."""
    dt = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    k = r % 5
    if k == 0:
        return f"{dt.year}/{dt.month}/{dt.day} {dt.hour}:{dt.minute:02d}"
    if k == 1:
        return f"{dt.year}年{dt.month}月{dt.day}日 {dt.hour:02d}:{dt.minute:02d}"
    if k == 2:
        return dt.strftime("%Y%m%d %H:%M:%S")
    if k == 3:
        return str(int((dt - datetime(1970, 1, 1)).total_seconds()) - UTC_OFFSET)  # epoch
    return dt.strftime("%Y-%m-%dT%H:%M:%S")


def _dirty_date(value: str, r: int) -> str | None:
    y, m, d = (int(x) for x in value.split("-"))
    k = r % 4
    if k == 0:
        return f"{y}/{m}/{d}"
    if k == 1:
        return f"{y}年{m}月{d}日"
    if k == 2:
        return f"{y}{m:02d}{d:02d}"
    return f"{y}.{m:02d}.{d:02d}"


def _dirty_money(value: str, r: int) -> str | None:
    """A yuan amount '1280.00' as '¥1,280.00', '1.28万', '1280' or '1,280'."""
    yuan = float(value)
    k = r % 4
    if k == 0:
        return f"¥{yuan:,.2f}"
    if k == 1 and yuan >= 10_000 and round(yuan) % 100 == 0:
        return f"{yuan / 10_000:g}万"
    if k == 2:
        return f"{yuan:,.0f}"
    return f"{yuan:.0f}"


def _dirty_name(value: str, r: int) -> str | None:
    k = r % 4
    if k == 0:
        return f" {value} "
    if k == 1:
        return value + "\u3000"
    if k == 2:
        return " ".join(value)
    return value[:1] + " " + value[1:]


# --------------------------------------------------------------------------- the population


@dataclass
class _People:
    n: int
    members: int
    segment: np.ndarray  # int8, PROSPECT for non-members
    person_id: pa.Array
    name: np.ndarray  # U
    name_typo: np.ndarray  # U, a plausible mistyping of name
    gender: np.ndarray  # 'F' / 'M'
    birthday: np.ndarray  # datetime64[D]
    birthday_typo: np.ndarray  # datetime64[D]
    city: np.ndarray  # U
    home_store: np.ndarray  # int index into STORES
    phone: np.ndarray  # U11, the phone the person gives (a family head's for dependants)
    phone2: np.ndarray  # U11 or ''
    email: np.ndarray  # U or ''
    member_no: np.ndarray  # U or ''
    record_no: np.ndarray  # U 病历号 (HIS patient id)
    id_card: np.ndarray  # U18 or ''
    unionid: np.ndarray  # U28 or ''
    openid_mp: np.ndarray
    openid_oa: np.ndarray
    douyin: np.ndarray
    xhs: np.ndarray
    weibo: np.ndarray
    wecom: np.ndarray
    idfa: np.ndarray
    oaid: np.ndarray
    online: np.ndarray  # bool: uses the website / H5 / mini-program
    join: np.ndarray  # int64 seconds: first contact with the chain
    dependant: np.ndarray  # bool: shares a family member's phone
    no_show_rate: np.ndarray
    his_member_no_only: np.ndarray  # bool: HIS rows carry the member no. but no phone


def _unique_numbers(rng: np.random.Generator, n: int, space: int) -> np.ndarray:
    """n distinct pseudo-random integers in [0, space) (an affine permutation of 0..n-1)."""
    a = 2_654_435_761 % space
    while math.gcd(a, space) != 1:
        a += 1
    b = int(rng.integers(0, space))
    return (np.arange(n, dtype=np.int64) * a + b) % space


def _id_cards(
    rng: np.random.Generator, city: np.ndarray, birthday: np.ndarray, male: np.ndarray
) -> np.ndarray:
    n = len(city)
    regions = [code for codes in ref.CITY_REGION_CODES.values() for code in codes]
    region = np.asarray(regions)[rng.integers(0, len(regions), n)]
    for c, codes in ref.CITY_REGION_CODES.items():
        at = city == c
        region[at] = np.asarray(codes)[rng.integers(0, len(codes), int(at.sum()))]
    seq = rng.integers(0, 500, n) * 2 + male.astype(np.int64)
    body = _join(_s(region), pc.replace_substring(_date(birthday), "-", ""), _pad(seq, 3))
    raw = np.frombuffer("".join(body.to_pylist()).encode("ascii"), dtype=np.uint8)
    digits = raw.reshape(n, 17).astype(np.int64) - 48
    weights = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
    check = np.asarray(list("10X98765432"))[(digits @ weights) % 11]
    return np.strings.add(np.asarray(body.to_pylist()), check)


def _make_people(rng: np.random.Generator, members: int) -> _People:
    prospects = max(1, int(members * 0.35))
    n = members + prospects
    segment = np.full(n, PROSPECT, dtype=np.int8)
    segment[:members] = rng.choice(len(SEGMENTS), size=members, p=SEGMENT_SHARE)
    is_member = segment != PROSPECT

    store_w = np.array([s[4] for s in ref.STORES])
    home_store = rng.choice(len(ref.STORES), size=n, p=store_w / store_w.sum())
    store_city = np.asarray([s[2] for s in ref.STORES])
    city = store_city[home_store]
    away = rng.random(n) < 0.08
    city[away] = np.asarray(ref.OTHER_CITIES)[
        rng.integers(0, len(ref.OTHER_CITIES), int(away.sum()))
    ]

    male = rng.random(n) < 0.09
    gender = np.where(male, "M", "F")
    age_days = np.clip(rng.normal(32, 7.5, n), 19, 62) * 365.25
    birthday = (TODAY.astype("datetime64[D]") - age_days.astype("timedelta64[D]")).astype(
        "datetime64[D]"
    )

    sw = np.asarray(ref.SURNAME_WEIGHTS)
    surname = np.asarray(ref.SURNAMES)[rng.choice(len(ref.SURNAMES), size=n, p=sw / sw.sum())]
    fem, mal = np.asarray(ref.FEMALE_GIVEN), np.asarray(ref.MALE_GIVEN)
    g1 = np.where(male, mal[rng.integers(0, len(mal), n)], fem[rng.integers(0, len(fem), n)])
    g2 = np.where(male, mal[rng.integers(0, len(mal), n)], fem[rng.integers(0, len(fem), n)])
    single = rng.random(n) < 0.22
    g2 = np.where(single | (g1 == g2), "", g2)
    name = np.strings.add(np.strings.add(surname, g1), g2)
    homophone = np.vectorize(lambda c: ref.HOMOPHONES.get(c, c), otypes=[str])
    last = np.where(g2 == "", g1, g2)
    typo_last = homophone(last)
    swap = (g2 != "") & (rng.random(n) < 0.35)
    typo_homophone = np.where(
        g2 == "",
        np.strings.add(surname, typo_last),
        np.strings.add(np.strings.add(surname, g1), typo_last),
    )
    name_typo = np.where(swap, np.strings.add(np.strings.add(surname, g2), g1), typo_homophone)

    year = birthday.astype("datetime64[Y]").astype(np.int64) + 1970
    month = (birthday.astype("datetime64[M]").astype(np.int64) % 12) + 1
    day = (birthday - birthday.astype("datetime64[M]")).astype(np.int64) + 1
    swappable = (day <= 12) & (day != month)
    swapped = (
        (year - 1970).astype("datetime64[Y]").astype("datetime64[M]")
        + (np.minimum(day, 12) - 1).astype("timedelta64[M]")
    ).astype("datetime64[D]") + (np.minimum(month, 28) - 1).astype("timedelta64[D]")
    birthday_typo = np.where(swappable, swapped, birthday + np.timedelta64(1, "D"))

    prefixes = np.asarray(
        [
            "138",
            "139",
            "137",
            "136",
            "135",
            "158",
            "159",
            "150",
            "151",
            "152",
            "186",
            "185",
            "187",
            "188",
            "189",
            "180",
            "181",
            "177",
            "199",
            "176",
        ]
    )
    numbers = _unique_numbers(rng, 2 * n, len(prefixes) * 100_000_000)
    own = np.strings.add(
        prefixes[numbers // 100_000_000], np.asarray(_pad(numbers % 100_000_000, 8).to_pylist())
    )
    phone = own[:n].copy()
    phone2 = np.where(is_member & (rng.random(n) < 0.06), own[n:], "")

    # Families sharing one phone (妈妈和女儿共用一个手机号): a dependant gives the head's phone.
    dependant = is_member & (rng.random(n) < 0.015)
    dep_idx = np.flatnonzero(dependant)
    heads = np.flatnonzero(is_member & ~dependant)
    if len(dep_idx) and len(heads):
        head = heads[rng.integers(0, len(heads), len(dep_idx))]
        phone[dep_idx] = phone[head]
        phone2[dep_idx] = ""
        same_surname = rng.random(len(dep_idx)) < 0.6
        fam = np.strings.add(surname[head], np.strings.add(g1[dep_idx], g2[dep_idx]))
        name[dep_idx] = np.where(same_surname, fam, name[dep_idx])
        name_typo[dep_idx] = name[dep_idx]
        home_store[dep_idx] = home_store[head]
        city[dep_idx] = city[head]

    mail_kind = rng.random(n)
    qq = rng.integers(100_000_000, 3_000_000_000, n)
    handles = _tokens(rng, n, 8, "abcdefghijklmnopqrstuvwxyz")
    email = np.where(
        mail_kind < 0.5,
        np.strings.add(np.asarray(_num(qq).to_pylist()), "@qq.com"),
        np.strings.add(handles, np.where(mail_kind < 0.8, "@163.com", "@126.com")),
    )
    email = np.where(is_member & (rng.random(n) < 0.2), email, "")

    member_no = np.strings.add(
        "M", np.asarray(_num(10_000_000 + _unique_numbers(rng, n, 90_000_000)).to_pylist())
    )
    member_no = np.where(is_member, member_no, "")
    record_no = np.strings.add("BL", np.asarray(_pad(np.arange(n) + 100_001, 7).to_pylist()))
    id_card = np.where(is_member & (rng.random(n) < 0.3), _id_cards(rng, city, birthday, male), "")

    wechat_only = segment == SEGMENTS.index("wechat_only")
    has_wx = wechat_only | (rng.random(n) < 0.6)
    unionid = np.where(has_wx, np.strings.add("oU", _tokens(rng, n, 26)), "")
    openid_mp = np.where(
        has_wx & (wechat_only | (rng.random(n) < 0.6)),
        np.strings.add("oM", _tokens(rng, n, 26)),
        "",
    )
    openid_oa = np.where(
        has_wx & (rng.random(n) < 0.65), np.strings.add("oA", _tokens(rng, n, 26)), ""
    )
    p_social = np.where(is_member, 1.0, 1.7)
    douyin = np.where(
        rng.random(n) < 0.33 * p_social, np.strings.add("_000", _tokens(rng, n, 32)), ""
    )
    xhs = np.where(rng.random(n) < 0.28 * p_social, _tokens(rng, n, 24, _HEX), "")
    weibo = np.where(
        rng.random(n) < 0.12 * p_social,
        np.asarray(_num(rng.integers(1_000_000_000, 7_999_999_999, n)).to_pylist()),
        "",
    )
    wecom = np.where(
        is_member & (rng.random(n) < 0.4), np.strings.add("wmGq", _tokens(rng, n, 28)), ""
    )
    online = wechat_only | (rng.random(n) < 0.55)
    ios = rng.random(n) < 0.45
    uuid = _tokens(rng, n, 32, _HEX)
    uuid_fmt = np.asarray(
        _join(
            pc.utf8_slice_codeunits(_s(uuid), 0, 8),
            "-",
            pc.utf8_slice_codeunits(_s(uuid), 8, 12),
            "-",
            pc.utf8_slice_codeunits(_s(uuid), 12, 16),
            "-",
            pc.utf8_slice_codeunits(_s(uuid), 16, 20),
            "-",
            pc.utf8_slice_codeunits(_s(uuid), 20, 32),
        ).to_pylist()
    )
    idfa = np.where(online & ios, np.strings.upper(uuid_fmt), "")
    oaid = np.where(online & ~ios, uuid_fmt, "")

    # First contact: spread over the history; dormant members joined early.
    span = HISTORY_DAYS - 14
    join_day = rng.integers(0, span, n)
    dormant = segment == SEGMENTS.index("dormant")
    join_day[dormant] = rng.integers(0, HISTORY_DAYS - 500, int(dormant.sum()))
    start = TODAY - np.timedelta64(HISTORY_DAYS, "D")
    join = (start.astype(np.int64) + join_day * DAY + rng.integers(10 * 3600, 20 * 3600, n)).astype(
        np.int64
    )

    no_show_rate = np.where(
        rng.random(n) < 0.05, rng.uniform(0.35, 0.6, n), rng.uniform(0.0, 0.08, n)
    )
    his_member_no_only = is_member & ~dependant & (rng.random(n) < 0.05)

    return _People(
        n=n,
        members=members,
        segment=segment,
        person_id=_join("P", _pad(np.arange(1, n + 1), 7)),
        name=name,
        name_typo=name_typo,
        gender=gender,
        birthday=birthday,
        birthday_typo=birthday_typo.astype("datetime64[D]"),
        city=city,
        home_store=home_store,
        phone=phone,
        phone2=phone2,
        email=email,
        member_no=member_no,
        record_no=record_no,
        id_card=id_card,
        unionid=unionid,
        openid_mp=openid_mp,
        openid_oa=openid_oa,
        douyin=douyin,
        xhs=xhs,
        weibo=weibo,
        wecom=wecom,
        idfa=idfa,
        oaid=oaid,
        online=online,
        join=join,
        dependant=dependant,
        no_show_rate=no_show_rate,
        his_member_no_only=his_member_no_only,
    )


# --------------------------------------------------------------------------- record helpers

_GENDER_STYLES = {"cn": ("女", "男"), "fm": ("F", "M"), "num": ("2", "1"), "en": ("female", "male")}


class _Who:
    """Person columns (as a source writes them) for records about people `pi`."""

    def __init__(
        self, p: _People, pi: np.ndarray, rng: np.random.Generator, dirty: float = 0.03
    ) -> None:
        self.p, self.pi, self.rng, self.dirty = p, pi, rng, dirty

    def _col(self, values: np.ndarray) -> pa.Array:
        return _null_where(_s(values), values == "")

    def name(self, typo: float = 0.03) -> pa.Array:
        use_typo = self.rng.random(len(self.pi)) < typo
        values = np.where(use_typo, self.p.name_typo[self.pi], self.p.name[self.pi])
        return _mangle(self.rng, _s(values), self.dirty, _dirty_name)

    def gender(self, style: str) -> pa.Array:
        female = self.p.gender[self.pi] == "F"
        styles = list(_GENDER_STYLES)
        other = np.asarray(styles)[self.rng.integers(0, len(styles), len(self.pi))]
        chosen = np.where(self.rng.random(len(self.pi)) < self.dirty, other, style)
        out = np.empty(len(self.pi), dtype=object)
        for key, (f, m) in _GENDER_STYLES.items():
            at = chosen == key
            out[at] = np.where(female[at], f, m)
        return _s(out)

    def birthday(self, typo: float = 0.03) -> pa.Array:
        use_typo = self.rng.random(len(self.pi)) < typo
        days = np.where(use_typo, self.p.birthday_typo[self.pi], self.p.birthday[self.pi])
        text = _date(days)
        return _mangle(self.rng, text, self.dirty * 3, _dirty_date)

    def phone(self, second: float = 0.0, missing: np.ndarray | None = None) -> pa.Array:
        own = self.p.phone[self.pi]
        alt = self.p.phone2[self.pi]
        values = np.where((alt != "") & (self.rng.random(len(self.pi)) < second), alt, own)
        if missing is not None:
            values = np.where(missing, "", values)
        return _mangle(self.rng, self._col(values), self.dirty, _dirty_phone)

    def field(self, attr: str) -> pa.Array:
        values: np.ndarray = getattr(self.p, attr)[self.pi]
        return self._col(values)

    def store(self) -> pa.Array:
        return _s(np.asarray([s[0] for s in ref.STORES])[self.p.home_store[self.pi]])


def _order_rows(n: int, keys: np.ndarray) -> np.ndarray:
    return np.argsort(keys, kind="stable") if n else np.arange(0)


def _with_duplicates(rng: np.random.Generator, table: pa.Table, rate: float = 0.005) -> pa.Table:
    """Exact duplicate rows, each right after its original (an export run twice, a re-sync)."""
    n = table.num_rows
    dup = np.flatnonzero(rng.random(n) < rate)
    order = np.argsort(np.concatenate([np.arange(n), dup]), kind="stable")
    return table.take(pa.array(np.concatenate([np.arange(n), dup])[order]))


def _blank_required(
    rng: np.random.Generator, cols: dict[str, pa.Array], names: Sequence[str], rate: float = 0.004
) -> np.ndarray:
    """Blank one required value in about `rate` of the rows; returns the broken-row mask."""
    n = len(next(iter(cols.values())))
    broken = rng.random(n) < rate
    which = rng.integers(0, len(names), n)
    for i, name in enumerate(names):
        cols[name] = _null_where(cols[name], broken & (which == i))
    return broken


@dataclass
class _Truth:
    refs: list[pa.Array]
    people: list[np.ndarray]
    kinds: list[pa.Array]
    sources: list[pa.Array]
    broken: list[np.ndarray]

    def add(
        self,
        source: str,
        kind: str,
        keys: pa.Array,
        pi: np.ndarray,
        broken: np.ndarray | None = None,
    ) -> None:
        self.add_rows(_join(f"{source}:", keys), pi, kind, _repeat(source, len(pi)), broken)

    def add_rows(
        self,
        refs: pa.Array,
        pi: np.ndarray,
        kind: str,
        sources: pa.Array,
        broken: np.ndarray | None = None,
    ) -> None:
        self.refs.append(refs.cast(pa.string()))
        self.people.append(pi)
        self.kinds.append(_repeat(kind, len(pi)))
        self.sources.append(sources)
        self.broken.append(np.zeros(len(pi), bool) if broken is None else broken)

    def table(self, person_id: pa.Array) -> pa.Table:
        def chunks(arrays: list[pa.Array]) -> pa.ChunkedArray:
            flat = [
                c for a in arrays for c in (a.chunks if isinstance(a, pa.ChunkedArray) else [a])
            ]
            return pa.chunked_array(flat, type=pa.string())

        return pa.table(
            {
                "ref": chunks(self.refs),
                "person_id": chunks([person_id.take(pa.array(pi)) for pi in self.people]),
                "kind": chunks(self.kinds),
                "source": chunks(self.sources),
                "expect_quarantine": pa.array(np.concatenate(self.broken)),
            }
        )


# --------------------------------------------------------------------------- writers


def _write_csv(table: pa.Table, path: Path, encoding: str = "utf-8") -> None:
    options = pacsv.WriteOptions(include_header=True, quoting_style="needed")
    if encoding == "utf-8":
        pacsv.write_csv(table, str(path), write_options=options)
        return
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, write_options=options)
    text = buffer.getvalue().decode("utf-8").replace("¥", "￥")  # GBK has no U+00A5
    path.write_bytes(text.encode(encoding))


def _write_jsonl(lines: pa.Array | pa.ChunkedArray, path: Path, append: bool = False) -> None:
    """One line per value, written straight from the Arrow buffers (UTF-8)."""
    parts = lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines]
    step = 200_000
    with path.open("ab" if append else "wb") as out:
        for part in parts:
            for start in range(0, len(part), step):
                chunk = _join(part.slice(start, step), "\n")
                if isinstance(chunk, pa.ChunkedArray):
                    chunk = chunk.combine_chunks()
                offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)
                data = chunk.buffers()[2]
                if data is not None and len(chunk):
                    first, last = chunk.offset, chunk.offset + len(chunk)
                    out.write(memoryview(data)[int(offsets[first]) : int(offsets[last])])


def _write_xlsx(rows: list[list[object]], header: list[str], path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    wb.properties.creator = "MeCDP demo"
    wb.properties.created = datetime(2026, 11, 20)
    ws = wb.create_sheet("Sheet1")
    ws.append(header)
    for row in rows:
        ws.append(row)
    wb.save(str(path))


def _jstr(arr: pa.Array) -> pa.Array:
    escaped = pc.replace_substring(
        pc.replace_substring(arr.cast(pa.string()), "\\", "\\\\"), '"', '\\"'
    )
    return _join('"', escaped, '"')


def _jfield(key: str, value_json: pa.Array) -> pa.Array:
    """',"key":value' or '' where the value is null."""
    return pc.fill_null(_join(f',"{key}":', value_json), "")


def _jobject(fields: Sequence[tuple[str, pa.Array]]) -> pa.Array:
    """A JSON object per row from (key, JSON value or null) columns; nulls are left out."""
    body = pc.binary_join_element_wise(*[_jfield(k, v) for k, v in fields], "")
    return _join("{", pc.utf8_slice_codeunits(body, 1, 1 << 30), "}")


# --------------------------------------------------------------------------- the chain


def _catalog_rows() -> list[dict[str, object]]:
    return [
        {
            "item_code": c[0],
            "name": c[1],
            "category": c[2],
            "price_fen": c[3] * 100,
            "price_band": c[4],
            "luxury": c[5],
            "repeat_cycle_days": c[6],
        }
        for c in ref.CATALOG
    ]


def _store_rows() -> list[dict[str, object]]:
    return [{"store_code": s[0], "name": s[1], "city": s[2], "opened_on": s[3]} for s in ref.STORES]


_SEGMENT_ITEMS: dict[str, dict[str, float]] = {
    "vip": {
        "LAS001": 4,
        "INJ005": 3,
        "INJ001": 4,
        "INJ002": 3,
        "LAS004": 3,
        "SUR002": 1,
        "SUR003": 1,
        "LAS002": 2,
        "INJ003": 2,
        "PRD002": 1,
    },
    "regular": {
        "INJ002": 4,
        "INJ001": 3,
        "INJ003": 4,
        "LAS002": 3,
        "LAS003": 3,
        "INJ004": 2,
        "SKN001": 2,
        "SUR001": 0.5,
        "PRD001": 1,
        "LAS001": 0.5,
    },
    "promo": {
        "INJ003": 4,
        "LAS003": 4,
        "SKN001": 3,
        "SKN002": 2,
        "LAS005": 2,
        "PRD001": 2,
        "INJ002": 1,
        "PRD003": 1,
    },
    "trial": {"SKN001": 5, "LAS003": 3, "INJ003": 2, "PRD001": 2, "SKN003": 2, "LAS005": 1},
    "course": {"LAS003": 4, "LAS002": 3, "INJ003": 3, "SKN002": 2, "LAS005": 2, "SKN001": 1},
    "dormant": {"INJ002": 2, "INJ003": 2, "LAS003": 2, "SKN001": 2, "SUR001": 1, "PRD001": 1},
    "wechat_only": {"PRD001": 4, "PRD002": 3, "PRD003": 3, "SKN001": 2, "INJ003": 1},
}
_SEGMENT_ORDERS = {  # (base, poisson mean, gap factor)
    "vip": (6, 12.0, 0.45),
    "regular": (2, 3.0, 1.0),
    "promo": (1, 3.0, 1.3),
    "trial": (1, 0.0, 1.0),
    "course": (1, 1.5, 1.2),
    "dormant": (1, 1.5, 0.8),
    "wechat_only": (1, 1.0, 1.5),
}


def _promo_days() -> np.ndarray:
    start = (TODAY - np.timedelta64(HISTORY_DAYS, "D")).astype("datetime64[D]")
    days = [
        (np.datetime64(f"{y}-{m:02d}-{d:02d}") - start).astype(np.int64)
        for y in range(2023, 2028)
        for m, d in ref.PROMO_DAYS
    ]
    return np.asarray(sorted(days), dtype=np.int64)


def generate_chain(out_dir: Path, members: int = 2000, seed: int = 42) -> DemoChain:
    """Write a synthetic clinic chain's sources under `out_dir` and return what was written."""
    if members < 10:
        raise ValueError("members must be at least 10")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def rng_for(part: int) -> np.random.Generator:
        return np.random.default_rng([seed, part])

    p = _make_people(rng_for(0), members)
    truth = _Truth([], [], [], [], [])
    files: list[DemoFile] = []
    store_codes = np.asarray([s[0] for s in ref.STORES])
    cat_code = np.asarray([c[0] for c in ref.CATALOG])
    cat_name = np.asarray([c[1] for c in ref.CATALOG])
    cat_category = np.asarray([c[2] for c in ref.CATALOG])
    cat_price = np.asarray([c[3] for c in ref.CATALOG], dtype=np.int64) * 100
    cat_cycle = np.asarray([c[6] or 365 for c in ref.CATALOG], dtype=np.float64)
    cat_lo = np.asarray([c[8] for c in ref.CATALOG])
    cat_hi = np.asarray([c[9] for c in ref.CATALOG])
    item_of = {c[0]: i for i, c in enumerate(ref.CATALOG)}
    start_s = int((TODAY - np.timedelta64(HISTORY_DAYS, "D")).astype(np.int64))
    today_s = int(TODAY.astype(np.int64))

    def add_file(path: Path, mapping: str, source: str, channel: str, rows: int) -> None:
        files.append(DemoFile(path, mapping, source, channel, rows))

    # ---------------------------------------------------------------- orders
    rng = rng_for(1)
    seg = p.segment[:members]
    n_orders = np.zeros(members, dtype=np.int64)
    gap_factor = np.ones(members)
    fav = np.zeros(members, dtype=np.int64)
    seg_item_p: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for s_code, s_name in enumerate(SEGMENTS):
        at = seg == s_code
        base, mean, gap = _SEGMENT_ORDERS[s_name]
        n_orders[at] = base + rng.poisson(mean, int(at.sum()))
        gap_factor[at] = gap
        items = np.asarray([item_of[c] for c in _SEGMENT_ITEMS[s_name]])
        weights = np.asarray(list(_SEGMENT_ITEMS[s_name].values()))
        seg_item_p[s_code] = (items, weights / weights.sum())
        fav[at] = rng.choice(items, size=int(at.sum()), p=weights / weights.sum())
    owner = np.repeat(np.arange(members), n_orders)
    total = len(owner)
    first = np.concatenate([[0], np.cumsum(n_orders)[:-1]])
    k = np.arange(total) - np.repeat(first, n_orders)
    o_seg = seg[owner]
    item = fav[owner].copy()
    other = rng.random(total) < 0.4
    for s_code, (items, probs) in seg_item_p.items():
        at = other & (o_seg == s_code)
        item[at] = rng.choice(items, size=int(at.sum()), p=probs)
    gaps = cat_cycle[fav[owner]] * rng.lognormal(0.0, 0.35, total) * gap_factor[owner]
    gaps[k == 0] = 0.0
    csum = np.cumsum(gaps)
    offset = csum - np.repeat(csum[first], n_orders)
    join_day = (p.join[:members] - start_s) // DAY
    day = join_day[owner] + offset.astype(np.int64)
    promo_days = _promo_days()
    is_promo_seg = o_seg == SEGMENTS.index("promo")
    nxt = promo_days[np.minimum(np.searchsorted(promo_days, day), len(promo_days) - 1)]
    snapped = nxt - rng.integers(0, 4, total)
    day = np.where(is_promo_seg & (k > 0), snapped, day)
    near_promo = (nxt - day >= 0) & (nxt - day <= 3)
    promo = np.where(
        is_promo_seg,
        rng.random(total) < 0.9,
        np.where(near_promo, rng.random(total) < 0.6, rng.random(total) < 0.04),
    )
    dormant_cut = np.minimum(join_day + rng.integers(120, 400, members), HISTORY_DAYS - 400)
    is_dormant = o_seg == SEGMENTS.index("dormant")
    t = start_s + day * DAY + rng.integers(10 * 3600, 21 * 3600, total)
    keep = (t < today_s) & ~(is_dormant & (day > dormant_cut[owner]) & (k > 0))
    owner, k, item, promo, t, o_seg = (
        owner[keep],
        k[keep],
        item[keep],
        promo[keep],
        t[keep],
        o_seg[keep],
    )
    total = len(owner)
    category = cat_category[item]

    # order type: normal / course_card (疗程卡) / stored_value (储值卡)
    short_cycle = (cat_cycle[item] <= 45) & (category != "产品")
    is_course_seg = o_seg == SEGMENTS.index("course")
    course = short_cycle & np.where(
        is_course_seg, (k == 0) | (rng.random(total) < 0.35), rng.random(total) < 0.07
    )
    sv_rate = np.select(
        [o_seg == SEGMENTS.index("vip"), o_seg == SEGMENTS.index("regular"), is_course_seg],
        [0.2, 0.03, 0.05],
        0.0,
    )
    stored = ~course & (k > 0) & (rng.random(total) < sv_rate)
    order_type = np.where(course, "course_card", np.where(stored, "stored_value", "normal"))
    sessions = np.where(course, rng.choice([3, 5, 6, 10], size=total, p=[0.3, 0.3, 0.2, 0.2]), 0)
    qty = np.where(category == "产品", rng.integers(1, 4, total), 1)
    amount = cat_price[item] * qty
    amount = np.where(course, np.round(cat_price[item] * sessions * 0.75 / 10_000) * 10_000, amount)
    amount = np.where(promo & ~stored, np.round(amount * 0.8 / 100) * 100, amount)
    amount = np.where(o_seg == SEGMENTS.index("vip"), np.round(amount * 0.9 / 100) * 100, amount)
    sv_amount = (
        np.where(
            o_seg == SEGMENTS.index("vip"),
            rng.choice([20_000, 50_000, 100_000], total),
            rng.choice([5_000, 10_000, 20_000], total),
        )
        * 100
    )
    amount = np.where(stored, sv_amount, amount).astype(np.int64)
    odd = rng.random(total) < 0.08
    amount = np.where(odd & ~stored, amount - rng.integers(1, 99, total) * 10, amount)
    coupon = promo & ~stored & (rng.random(total) < 0.3)
    paid = np.where(
        coupon, np.maximum(amount - rng.choice([5_000, 10_000, 20_000], total), 100), amount
    )

    # where the order was placed
    r = rng.random(total)
    trial = o_seg == SEGMENTS.index("trial")
    product = category == "产品"
    route = np.where(
        o_seg == SEGMENTS.index("wechat_only"),
        2,
        np.where(
            stored,
            np.where(r < 0.9, 0, 2),
            np.where(
                trial,
                np.where(r < 0.55, 1, np.where(r < 0.65, 2, 0)),
                np.where(
                    product,
                    np.where(r < 0.5, 1, np.where(r < 0.7, 2, 0)),
                    np.where(r < 0.85, 0, np.where(r < 0.93, 1, 2)),
                ),
            ),
        ),
    )
    store = np.where(
        rng.random(total) < 0.88, p.home_store[owner], rng.integers(0, len(ref.STORES), total)
    )
    order_store = store_codes[store]
    item_code = cat_code[item]
    item_name = cat_name[item]
    item_code = np.where(stored, "", item_code)
    item_name = np.where(stored, "会员储值卡充值", item_name)
    category = np.where(stored, "", category)
    yuan = _join(_num(amount // 100), ".", _pad(amount % 100, 2))
    paid_yuan = _join(_num(paid // 100), ".", _pad(paid % 100, 2))

    # POS exports: an old GBK system in the east, a cloud POS elsewhere
    east = np.isin(order_store, ["SH01", "SH02", "SH03", "HZ01"])
    for source, sel, encoding in (
        ("pos_east", (route == 0) & east, "gbk"),
        ("pos_cloud", (route == 0) & ~east, "utf-8"),
    ):
        idx = np.flatnonzero(sel)
        idx = idx[_order_rows(len(idx), t[idx])]
        rng = rng_for(10 if encoding == "gbk" else 11)
        pi = owner[idx]
        who = _Who(p, pi, rng)
        nos = _join("XS" if encoding == "gbk" else "PC", _ts(t[idx], "%Y%m%d"), _pad(idx, 7))
        when = _mangle(rng, _ts(t[idx]), 0.04, _dirty_ts)
        money = _mangle(rng, yuan.take(pa.array(idx)), 0.05, _dirty_money)
        channel = _mangle(
            rng,
            _pick(rng, len(idx), ["门店", "门店", "门店", "到店", "线下"]),
            0.01,
            lambda _v, r: ["门店自提", "POS-2", "朋友介绍"][r % 3],
        )
        cols = {
            "order_no": nos,
            "store_code": _s(order_store[idx]),
            "ordered_at": when,
            "member_no": who.field("member_no"),
            "name": who.name(),
            "phone": who.phone(second=0.3),
            "gender": who.gender("cn"),
            "birthday": who.birthday(),
            "item_code": _null_where(_s(item_code[idx]), item_code[idx] == ""),
            "item_name": _s(item_name[idx]),
            "category": _null_where(_s(category[idx]), category[idx] == ""),
            "quantity": _num(qty[idx]),
            "amount": money,
            "paid": paid_yuan.take(pa.array(idx)),
            "promo": _s(np.where(promo[idx], "是", "否")),
            "order_type": _s(
                np.select(
                    [order_type[idx] == "course_card", order_type[idx] == "stored_value"],
                    ["疗程卡", "储值卡"],
                    "普通",
                )
            ),
            "sessions": _null_where(_num(sessions[idx]), sessions[idx] == 0),
            "channel": channel,
        }
        broken = _blank_required(rng, cols, ["amount", "ordered_at"])
        truth.add(source, "orders", nos, pi, broken)
        headers = (
            {
                "order_no": "单号",
                "store_code": "门店编码",
                "ordered_at": "消费时间",
                "member_no": "会员卡号",
                "name": "姓名",
                "phone": "手机号",
                "gender": "性别",
                "birthday": "生日",
                "item_code": "项目编码",
                "item_name": "项目名称",
                "category": "项目类别",
                "quantity": "数量",
                "amount": "消费金额",
                "paid": "实收金额",
                "promo": "是否促销",
                "order_type": "订单类型",
                "sessions": "疗程次数",
                "channel": "渠道",
            }
            if encoding == "gbk"
            else {
                "order_no": "订单编号",
                "store_code": "门店",
                "ordered_at": "下单时间",
                "member_no": "会员号",
                "name": "客户姓名",
                "phone": "手机",
                "gender": "性别",
                "birthday": "出生日期",
                "item_code": "项目代码",
                "item_name": "项目",
                "category": "类别",
                "quantity": "数量",
                "amount": "应收金额",
                "paid": "实收",
                "promo": "促销",
                "order_type": "单据类型",
                "sessions": "次数",
                "channel": "销售渠道",
            }
        )
        table = _with_duplicates(rng, pa.table({headers[c]: v for c, v in cols.items()}))
        path = out_dir / f"{source}.csv"
        _write_csv(table, path, encoding)
        add_file(path, "pos_orders", source, "pos", table.num_rows)

    # e-commerce platforms (天猫/京东/有赞): Parquet
    rng = rng_for(12)
    idx = np.flatnonzero(route == 1)
    idx = idx[_order_rows(len(idx), t[idx])]
    pi = owner[idx]
    who = _Who(p, pi, rng)
    platform = rng.choice(3, size=len(idx), p=[0.55, 0.25, 0.2])
    # a buyer id is stable per person and platform
    person_buyer = _s(_tokens(np.random.default_rng([seed, 13]), p.n, 10, _HEX))
    buyer = _join(_s(np.asarray(["tb_", "jd_", "yz_"])[platform]), person_buyer.take(pa.array(pi)))
    nos = _join(_s(np.asarray(["TB", "JD", "YZ"])[platform]), _pad(idx + 1, 12))
    cols = {
        "order_no": nos,
        "channel": _mangle(
            rng,
            _s(np.asarray(["天猫", "京东", "有赞"])[platform]),
            0.02,
            lambda _v, r: ["TMALL旗舰店", "京东到家", "抖音小店"][r % 3],
        ),
        "customer_no": buyer,
        "name": who.name(typo=0.05),
        "phone": who.phone(second=0.5),
        "city": who.field("city"),
        "ordered_at": _mangle(rng, _ts(t[idx]), 0.03, _dirty_ts),
        "item_name": _join(
            _s(item_name[idx]), _s(np.where(sessions[idx] > 0, "疗程卡", "")), " 到店核销"
        ),
        "item_code": _null_where(_s(item_code[idx]), item_code[idx] == ""),
        "quantity": pa.array(qty[idx].astype(np.int64)),
        "amount": yuan.take(pa.array(idx)),
        "paid": _mangle(rng, paid_yuan.take(pa.array(idx)), 0.03, _dirty_money),
        "status": _pick(rng, len(idx), ["交易成功", "交易成功", "交易成功", "已核销", "退款中"]),
        "store_code": _s(order_store[idx]),
    }
    broken = _blank_required(rng, cols, ["amount", "ordered_at"])
    truth.add("ecommerce_export", "orders", nos, pi, broken)
    headers = {
        "order_no": "订单编号",
        "channel": "平台",
        "customer_no": "买家ID",
        "name": "收货人姓名",
        "phone": "买家手机",
        "city": "收货城市",
        "ordered_at": "下单时间",
        "item_name": "商品名称",
        "item_code": "商家编码",
        "quantity": "购买数量",
        "amount": "订单金额",
        "paid": "实付金额",
        "status": "订单状态",
        "store_code": "核销门店",
    }
    table = _with_duplicates(rng, pa.table({headers[c]: v for c, v in cols.items()}))
    path = out_dir / "ecommerce_export.parquet"
    pq.write_table(table, str(path))
    add_file(path, "ecommerce_orders", "ecommerce_export", "ecommerce", table.num_rows)

    # mini-program mall (WeChat Pay, amounts in fen): JSONL
    rng = rng_for(14)
    idx = np.flatnonzero(route == 2)
    idx = idx[_order_rows(len(idx), t[idx])]
    pi = owner[idx]
    who = _Who(p, pi, rng)
    nos = _join("MP", _ts(t[idx], "%Y%m%d"), _pad(idx + 1, 10))
    has_phone = (p.segment[pi] != SEGMENTS.index("wechat_only")) & (rng.random(len(idx)) < 0.7)
    phone = who.phone(missing=~has_phone)
    openid = _s(p.openid_mp[pi])
    openid = _null_where(openid, p.openid_mp[pi] == "")
    lines = _jobject(
        [
            ("out_trade_no", _jstr(nos)),
            ("appid", _jstr(_null_where(_s(np.full(len(idx), MP_APPID)), p.openid_mp[pi] == ""))),
            ("openid", _jstr(openid)),
            ("unionid", _jstr(who.field("unionid"))),
            ("phone", _jstr(phone)),
            ("description", _jstr(_s(item_name[idx]))),
            ("sku_code", _jstr(_null_where(_s(item_code[idx]), item_code[idx] == ""))),
            ("quantity", _num(qty[idx])),
            ("total_fee", _num(amount[idx])),
            ("payer_total", _num(paid[idx])),
            ("create_time", _jstr(_ts(t[idx], "%Y-%m-%dT%H:%M:%S+08:00"))),
            ("trade_state", _jstr(_s(np.full(len(idx), "SUCCESS")))),
            ("order_type", _jstr(_s(order_type[idx]))),
            ("sessions", _null_where(_num(sessions[idx]), sessions[idx] == 0)),
            ("store_code", _jstr(_s(order_store[idx]))),
        ]
    )
    truth.add("mini_program_mall", "orders", nos, pi)
    path = out_dir / "mini_program_mall.jsonl"
    _write_jsonl(lines, path)
    add_file(path, "wechat_mall_orders", "mini_program_mall", "wechat_mp", len(lines))

    # ---------------------------------------------------------------- visits (HIS)
    rng = rng_for(2)
    service = (order_type == "normal") & (category != "产品") & (item_code != "")
    lag = np.where(
        route == 0, 0, rng.integers(3, 30, total) * DAY + rng.integers(-3, 3, total) * 3600
    )
    v_owner = [owner[service]]
    v_item = [item[service]]
    v_store = [store[service]]
    v_time = [
        t[service]
        + lag[service]
        - np.where(route[service] == 0, rng.integers(1800, 5400, int(service.sum())), 0)
    ]
    c_idx = np.flatnonzero(course)
    reps = sessions[c_idx]
    c_rep = np.repeat(c_idx, reps)
    j = np.arange(len(c_rep)) - np.repeat(np.concatenate([[0], np.cumsum(reps)[:-1]]), reps)
    c_gap = cat_cycle[item[c_rep]] * rng.uniform(0.9, 1.4, len(c_rep))
    v_owner.append(owner[c_rep])
    v_item.append(item[c_rep])
    v_store.append(store[c_rep])
    v_time.append(
        t[c_rep] + (j * c_gap * DAY).astype(np.int64) + rng.integers(-2, 3, len(c_rep)) * 3600
    )
    vo, vi, vs, vt = (np.concatenate(x) for x in (v_owner, v_item, v_store, v_time))
    dorm_cut_s = start_s + dormant_cut * DAY
    vis_seg = p.segment[vo]
    drop = (vis_seg == SEGMENTS.index("dormant")) & (vt > dorm_cut_s[vo])
    drop |= vt > today_s + 45 * DAY
    vo, vi, vs, vt = vo[~drop], vi[~drop], vs[~drop], vt[~drop]
    arrived = vt < today_s
    # no-shows and cancellations ahead of some visits, and future bookings
    miss = rng.random(len(vo)) < p.no_show_rate[vo]
    m_status = np.where(rng.random(int(miss.sum())) < 0.6, "no_show", "cancelled")
    m_time = vt[miss] - rng.integers(3, 15, int(miss.sum())) * DAY
    a_owner = np.concatenate([vo, vo[miss]])
    a_item = np.concatenate([vi, vi[miss]])
    a_store = np.concatenate([vs, vs[miss]])
    a_time = np.concatenate([vt, m_time])
    a_status = np.concatenate([np.where(arrived, "arrived", "booked"), m_status])
    order_a = np.argsort(a_time, kind="stable")
    a_owner, a_item, a_store, a_time, a_status = (
        x[order_a] for x in (a_owner, a_item, a_store, a_time, a_status)
    )
    a_sched = (a_time // 1800) * 1800  # bookings are on the half hour
    na = len(a_owner)
    who = _Who(p, a_owner, rng)
    appt_no = _join("YY", _ts(a_sched, "%Y%m%d"), _pad(np.arange(1, na + 1), 8))
    arrived_at = _null_where(_ts(a_time), a_status != "arrived")
    status_cn = {
        "arrived": ["已到店", "已完成", "到店"],
        "booked": ["已预约", "待到店"],
        "no_show": ["爽约", "未到店"],
        "cancelled": ["已取消", "取消"],
    }
    status = np.empty(na, dtype=object)
    for key, spellings in status_cn.items():
        at = a_status == key
        status[at] = np.asarray(spellings, dtype=object)[
            rng.integers(0, len(spellings), int(at.sum()))
        ]
    consultant = np.asarray(ref.CONSULTANTS)[(a_owner * 7 + a_store) % len(ref.CONSULTANTS)]
    member_no_only = p.his_member_no_only[a_owner]
    cols = {
        "appointment_no": appt_no,
        "customer_no": who.field("record_no"),
        "name": who.name(),
        "phone": who.phone(second=0.2, missing=member_no_only),
        "gender": who.gender("cn"),
        "store_code": _s(store_codes[a_store]),
        "item_name": _s(cat_name[a_item]),
        "item_code": _s(cat_code[a_item]),
        "consultant": _s(consultant),
        "channel": _mangle(
            rng,
            _pick(
                rng,
                na,
                ["电话", "小程序", "抖音", "到店", "美团", "大众点评", "企业微信", "公众号"],
                [3, 3, 2, 2, 1, 1, 2, 1],
            ),
            0.02,
            lambda _v, r: ["朋友推荐", "老带新", "抖音团购", "Douyin-Ads"][r % 4],
        ),
        "scheduled_at": _mangle(rng, _ts(a_sched), 0.03, _dirty_ts),
        "arrived_at": arrived_at,
        "status": _s(status),
    }
    broken = _blank_required(rng, cols, ["scheduled_at", "status"])
    truth.add("his_appointments", "appointments", appt_no, a_owner, broken)
    headers = {
        "appointment_no": "预约号",
        "customer_no": "病历号",
        "name": "姓名",
        "phone": "手机号",
        "gender": "性别",
        "store_code": "预约门店",
        "item_name": "预约项目",
        "item_code": "项目编码",
        "consultant": "咨询师",
        "channel": "预约渠道",
        "scheduled_at": "预约时间",
        "arrived_at": "到店时间",
        "status": "状态",
    }
    table = _with_duplicates(rng, pa.table({headers[c]: v for c, v in cols.items()}))
    path = out_dir / "his_appointments.csv"
    _write_csv(table, path)
    add_file(path, "his_appointments", "his_appointments", "his", table.num_rows)

    # treatments performed: one per arrived appointment
    rng = rng_for(3)
    done = np.flatnonzero(a_status == "arrived")
    tp, ti, ts_, tt = (
        a_owner[done],
        a_item[done],
        a_store[done],
        a_time[done] + rng.integers(900, 3600, len(done)),
    )
    nt = len(done)
    who = _Who(p, tp, rng)
    doctor_idx = (ts_ * 3 + rng.integers(0, 3, nt)) % len(ref.DOCTORS)
    units = np.round(cat_lo[ti] + (cat_hi[ti] - cat_lo[ti]) * rng.random(nt))
    units = np.where(
        cat_code[ti] == "INJ001", np.round(cat_lo[ti] + rng.integers(0, 5, nt) * 0.5, 1), units
    )
    treat_no = _join("ZL", _ts(tt, "%y%m%d"), _pad(np.arange(1, nt + 1), 8))
    member_no_only = p.his_member_no_only[tp]
    with_id = (p.id_card[tp] != "") & (rng.random(nt) < 0.7)
    cols = {
        "treatment_no": treat_no,
        "customer_no": who.field("record_no"),
        "member_no": who.field("member_no"),
        "name": who.name(),
        "gender": who.gender("cn"),
        "birthday": who.birthday(),
        "phone": who.phone(missing=member_no_only),
        "id_card": _null_where(_s(p.id_card[tp]), ~with_id),
        "store_code": _s(store_codes[ts_]),
        "item_code": _s(cat_code[ti]),
        "item_name": _s(cat_name[ti]),
        "category": _s(cat_category[ti]),
        "doctor": _s(np.asarray(ref.DOCTORS)[doctor_idx]),
        "units": _num(units),
        "performed_at": _mangle(rng, _ts(tt), 0.03, _dirty_ts),
    }
    broken = _blank_required(rng, cols, ["performed_at"])
    truth.add("his_treatments", "treatments", treat_no, tp, broken)
    headers = {
        "treatment_no": "治疗单号",
        "customer_no": "病历号",
        "member_no": "会员卡号",
        "name": "姓名",
        "gender": "性别",
        "birthday": "出生日期",
        "phone": "手机号",
        "id_card": "身份证号",
        "store_code": "门店编码",
        "item_code": "项目编码",
        "item_name": "治疗项目",
        "category": "项目类别",
        "doctor": "治疗医生",
        "units": "剂量",
        "performed_at": "治疗时间",
    }
    table = _with_duplicates(rng, pa.table({headers[c]: v for c, v in cols.items()}))
    path = out_dir / "his_treatments.csv"
    _write_csv(table, path)
    add_file(path, "his_treatments", "his_treatments", "his", table.num_rows)

    _social_sources(p, rng_for, truth, add_file, out_dir, start_s, today_s)
    _service_sources(
        p, rng_for, truth, add_file, out_dir, start_s, today_s, tp, tt, ti, ts_, doctor_idx
    )
    _contact_sources(p, rng_for, truth, add_file, out_dir, start_s, today_s)
    events_path = out_dir / "events.jsonl"
    _events(p, rng_for(9), truth, events_path, start_s, today_s)

    truth_path = out_dir / "truth.parquet"
    pq.write_table(truth.table(p.person_id), str(truth_path))
    return DemoChain(
        out_dir=out_dir,
        files=files,
        event_sources=list(EVENT_SOURCES),
        events_path=events_path,
        truth_path=truth_path,
        stores=_store_rows(),
        catalog=_catalog_rows(),
    )


_AddFile = Callable[[Path, str, str, str, int], None]
_RngFor = Callable[[int], np.random.Generator]


def _spread(
    rng: np.random.Generator,
    p: _People,
    pi: np.ndarray,
    start_s: int,
    today_s: int,
    lead_days: int = 120,
) -> np.ndarray:
    """Times between (first contact - lead_days) and today, per record."""
    lo = np.maximum(p.join[pi] - lead_days * DAY, start_s)
    times: np.ndarray = (lo + (today_s - lo) * rng.random(len(pi))).astype(np.int64)
    return times


def _social_sources(
    p: _People,
    rng_for: _RngFor,
    truth: _Truth,
    add_file: _AddFile,
    out_dir: Path,
    start_s: int,
    today_s: int,
) -> None:
    specs = (  # source, mapping, channel, id attr, mean, key, id key, title key, time style
        (
            "douyin_export",
            "douyin_interactions",
            "douyin",
            "douyin",
            3.0,
            "event_id",
            "open_id",
            "video_title",
            "epoch",
        ),
        (
            "xhs_export",
            "xhs_interactions",
            "xhs",
            "xhs",
            2.5,
            "event_id",
            "user_id",
            "note_title",
            "text",
        ),
        (
            "weibo_export",
            "weibo_interactions",
            "weibo",
            "weibo",
            1.5,
            "mid",
            "uid",
            "status_text",
            "text",
        ),
        (
            "wechat_oa_export",
            "wechat_interactions",
            "wechat_oa",
            "openid_oa",
            3.0,
            "msg_id",
            "openid",
            "article_title",
            "epoch",
        ),
    )
    actions = {
        "douyin": (["like", "comment", "share", "follow", "dm"], [0.45, 0.25, 0.1, 0.12, 0.08]),
        "xhs": (["点赞", "收藏", "评论", "关注", "私信"], [0.4, 0.25, 0.2, 0.1, 0.05]),
        "weibo": (["like", "comment", "share", "follow"], [0.5, 0.25, 0.15, 0.1]),
        "wechat_oa": (["阅读", "点赞", "分享", "关注", "评论"], [0.5, 0.2, 0.1, 0.1, 0.1]),
    }
    for part, (
        source,
        mapping,
        channel,
        attr,
        mean,
        key,
        id_key,
        title_key,
        time_style,
    ) in enumerate(specs):
        rng = rng_for(20 + part)
        ids: np.ndarray = getattr(p, attr)
        holders = np.flatnonzero(ids != "")
        counts = rng.poisson(mean, len(holders))
        pi = np.repeat(holders, counts)
        tt = _spread(rng, p, pi, start_s, today_s)
        order = np.argsort(tt, kind="stable")
        pi, tt = pi[order], tt[order]
        n = len(pi)
        names, weights = actions[channel]
        action = _mangle(
            rng,
            _pick(rng, n, names, weights),
            0.01,
            lambda _v, r: ["digg", "collect", "围观"][r % 3],
        )
        is_comment = pc.is_in(action, pa.array(["comment", "评论", "dm", "私信"])).to_numpy(
            zero_copy_only=False
        )
        content = _null_where(_pick(rng, n, ref.SOCIAL_COMMENTS), ~is_comment)
        keys = _join(f"{channel[:2].upper()}", _pad(np.arange(1, n + 1), 10))
        when = _num(tt - UTC_OFFSET) if time_style == "epoch" else _jstr(_ts(tt))
        fields = [(key, _jstr(keys)), (id_key, _jstr(_s(ids[pi])))]
        if channel == "wechat_oa":
            fields += [
                ("appid", _jstr(_s(np.full(n, OA_APPID)))),
                ("unionid", _jstr(_null_where(_s(p.unionid[pi]), p.unionid[pi] == ""))),
            ]
        phone = _null_where(_s(p.phone[pi]), rng.random(n) > 0.03)  # a phone left in a DM
        fields += [
            ("action" if channel != "wechat_oa" else "event", _jstr(action)),
            ("content", _jstr(content)),
            (title_key, _jstr(_pick(rng, n, ref.VIDEO_TITLES))),
            ("phone", _jstr(_mangle(rng, phone, 0.2, _dirty_phone))),
            ("create_time" if channel != "weibo" else "created_at", when),
        ]
        missing = rng.random(n) < 0.003
        fields[-1] = (fields[-1][0], _null_where(fields[-1][1], missing))
        lines = _jobject(fields)
        dup = np.flatnonzero(rng.random(n) < 0.005)
        order = np.argsort(np.concatenate([np.arange(n), dup]), kind="stable")
        lines = lines.take(pa.array(np.concatenate([np.arange(n), dup])[order]))
        truth.add(source, "interactions", keys, pi, missing)
        path = out_dir / f"{source}.jsonl"
        _write_jsonl(lines, path)
        add_file(path, mapping, source, channel, len(lines))


def _service_sources(
    p: _People,
    rng_for: _RngFor,
    truth: _Truth,
    add_file: _AddFile,
    out_dir: Path,
    start_s: int,
    today_s: int,
    tp: np.ndarray,
    tt: np.ndarray,
    ti: np.ndarray,
    ts_: np.ndarray,
    doctor_idx: np.ndarray,
) -> None:
    is_member = p.segment != PROSPECT
    cat_name = np.asarray([c[1] for c in ref.CATALOG])

    # Douyin lead forms (巨量引擎线索): members who came from an ad, and prospects
    rng = rng_for(30)
    lead = (p.douyin != "") & (rng.random(p.n) < np.where(is_member, 0.35, 0.25))
    lead |= ~is_member & (rng.random(p.n) < 0.1)
    pi = np.flatnonzero(lead & (p.segment != SEGMENTS.index("wechat_only")))
    n_leads = len(pi)
    lt = np.where(
        is_member[pi],
        p.join[pi] - rng.integers(3, 30, len(pi)) * DAY,
        _spread(rng, p, pi, start_s, today_s, 0),
    )
    lt = np.maximum(lt, start_s + rng.integers(9 * 3600, 22 * 3600, n_leads))
    order = np.argsort(lt, kind="stable")
    pi, lt = pi[order], lt[order]
    n = len(pi)
    who = _Who(p, pi, rng)
    keys = _join("CL", _pad(7_000_000_000 + np.arange(1, n + 1), 10))
    cols = {
        "interaction_no": keys,
        "name": who.name(),
        "phone": who.phone(),
        "city": who.field("city"),
        "topic": _pick(rng, n, list(cat_name[:16])),
        "content": _null_where(_pick(rng, n, ref.LEAD_MESSAGES), rng.random(n) < 0.3),
        "occurred_at": _mangle(rng, _ts(lt), 0.03, _dirty_ts),
        "channel": _mangle(
            rng,
            _pick(rng, n, ["抖音", "抖音", "抖音", "dy"]),
            0.02,
            lambda _v, r: ["今日头条", "穿山甲", "巨量引擎"][r % 3],
        ),
        "douyin_open_id": _null_where(_s(p.douyin[pi]), p.douyin[pi] == ""),
    }
    broken = _blank_required(rng, cols, ["occurred_at"])
    truth.add("douyin_leads", "interactions", keys, pi, broken)
    headers = {
        "interaction_no": "线索ID",
        "name": "姓名",
        "phone": "电话",
        "city": "城市",
        "topic": "意向项目",
        "content": "留言",
        "occurred_at": "线索创建时间",
        "channel": "流量来源",
        "douyin_open_id": "抖音用户ID",
    }
    table = _with_duplicates(rng, pa.table({headers[c]: v for c, v in cols.items()}))
    path = out_dir / "douyin_leads.csv"
    _write_csv(table, path)
    add_file(path, "lead_forms", "douyin_leads", "douyin", table.num_rows)
    lead_people = pi

    # call centre: members call in; leads get called back
    rng = rng_for(31)
    has_phone = p.segment != SEGMENTS.index("wechat_only")
    calls = np.where(is_member & has_phone, rng.poisson(0.5, p.n), 0)
    calls[lead_people] += (rng.random(len(lead_people)) < 0.5).astype(np.int64)
    pi = np.repeat(np.arange(p.n), calls)
    ct = _spread(rng, p, pi, start_s, today_s, 10)
    order = np.argsort(ct, kind="stable")
    pi, ct = pi[order], ct[order]
    n = len(pi)
    who = _Who(p, pi, rng)
    keys = _join("CALL", _ts(ct, "%Y%m%d"), _pad(np.arange(1, n + 1), 8))
    cols = {
        "interaction_no": keys,
        "phone": who.phone(second=0.4),
        "agent": _pick(rng, n, ref.AGENTS),
        "direction": _pick(rng, n, ["呼入", "呼出"]),
        "occurred_at": _mangle(rng, _ts(ct), 0.03, _dirty_ts),
        "duration": _num(rng.integers(15, 900, n)),
        "topic": _pick(rng, n, list(cat_name[:16])),
        "content": _pick(rng, n, ref.CALL_SUMMARIES),
    }
    broken = _blank_required(rng, cols, ["occurred_at"])
    truth.add("call_center", "interactions", keys, pi, broken)
    headers = {
        "interaction_no": "通话ID",
        "phone": "客户号码",
        "agent": "坐席",
        "direction": "呼叫类型",
        "occurred_at": "通话开始时间",
        "duration": "通话时长(秒)",
        "topic": "咨询项目",
        "content": "通话小结",
    }
    table = _with_duplicates(rng, pa.table({headers[c]: v for c, v in cols.items()}))
    path = out_dir / "call_center.csv"
    _write_csv(table, path)
    add_file(path, "call_center_logs", "call_center", "call_center", table.num_rows)

    # online chat sessions
    rng = rng_for(32)
    chats = rng.poisson(np.where(is_member, 0.25, 0.3))
    pi = np.repeat(np.arange(p.n), chats)
    cht = _spread(rng, p, pi, start_s, today_s, 30)
    order = np.argsort(cht, kind="stable")
    pi, cht = pi[order], cht[order]
    n = len(pi)
    who = _Who(p, pi, rng)
    anonymous = (rng.random(n) < 0.3) | (p.segment[pi] == SEGMENTS.index("wechat_only"))
    keys = _join("S", _pad(np.arange(1, n + 1), 9))
    cols = {
        "interaction_no": keys,
        "name": _null_where(who.name(), anonymous),
        "phone": who.phone(missing=anonymous),
        "channel": _pick(rng, n, ["官网", "小程序", "H5", "公众号", "落地页"]),
        "agent": _pick(rng, n, ref.AGENTS),
        "occurred_at": _mangle(rng, _ts(cht), 0.03, _dirty_ts),
        "topic": _pick(rng, n, list(cat_name[:16])),
        "content": _pick(rng, n, ref.CHAT_OPENERS),
    }
    broken = _blank_required(rng, cols, ["occurred_at"])
    truth.add("online_chat", "interactions", keys, pi, broken)
    headers = {
        "interaction_no": "会话ID",
        "name": "访客姓名",
        "phone": "访客手机",
        "channel": "访客来源",
        "agent": "接待客服",
        "occurred_at": "会话开始时间",
        "topic": "咨询项目",
        "content": "首条消息",
    }
    table = _with_duplicates(rng, pa.table({headers[c]: v for c, v in cols.items()}))
    path = out_dir / "online_chat.csv"
    _write_csv(table, path)
    add_file(path, "chat_logs", "online_chat", "chat", table.num_rows)

    # customer-service tickets (complaints) after some treatments
    rng = rng_for(33)
    sel = np.flatnonzero(rng.random(len(tp)) < 0.015)
    pi, kt = tp[sel], tt[sel] + rng.integers(1, 10, len(sel)) * DAY
    keep = kt < today_s
    pi, kt = pi[keep], kt[keep]
    order = np.argsort(kt, kind="stable")
    pi, kt = pi[order], kt[order]
    n = len(pi)
    who = _Who(p, pi, rng)
    topic = rng.integers(0, len(ref.TICKET_TOPICS), n)
    keys = _join("GD", _ts(kt, "%Y%m%d"), _pad(np.arange(1, n + 1), 6))
    cols = {
        "interaction_no": keys,
        "name": who.name(),
        "phone": who.phone(),
        "channel": _pick(rng, n, ["电话", "在线客服", "微信", "大众点评"]),
        "topic": _s(np.asarray([x[0] for x in ref.TICKET_TOPICS])[topic]),
        "content": _s(np.asarray([x[1] for x in ref.TICKET_TOPICS])[topic]),
        "agent": _pick(rng, n, ref.AGENTS),
        "occurred_at": _ts(kt),
    }
    truth.add("cs_tickets", "interactions", keys, pi)
    headers = {
        "interaction_no": "工单号",
        "name": "姓名",
        "phone": "手机号",
        "channel": "受理渠道",
        "topic": "工单类型",
        "content": "问题描述",
        "agent": "处理人",
        "occurred_at": "创建时间",
    }
    table = pa.table({headers[c]: v for c, v in cols.items()})
    path = out_dir / "cs_tickets.csv"
    _write_csv(table, path)
    add_file(path, "cs_tickets", "cs_tickets", "call_center", table.num_rows)

    # satisfaction surveys / NPS after treatments (问卷星 export): XLSX, kept small
    rng = rng_for(34)
    rate = min(0.12, 5_000 / max(len(tp), 1))
    sel = np.flatnonzero(rng.random(len(tp)) < rate)
    pi, st = tp[sel], tt[sel] + rng.integers(3600, 3 * DAY, len(sel))
    keep = st < today_s
    sel, pi, st = sel[keep], pi[keep], st[keep]
    n = len(pi)
    who = _Who(p, pi, rng)
    doctor_effect = np.linspace(-1.2, 0.8, len(ref.DOCTORS))[doctor_idx[sel]]
    score = np.clip(np.round(rng.normal(8.0 + doctor_effect, 2.0)), 0, 10).astype(np.int64)
    doctors = np.asarray(ref.DOCTORS)[doctor_idx[sel]]
    texts = []
    for sc, d, r in zip(
        score.tolist(), doctors.tolist(), rng.integers(0, 1 << 30, n).tolist(), strict=True
    ):
        pool = (
            ref.POSITIVE_COMMENTS
            if sc >= 9
            else ref.NEUTRAL_COMMENTS
            if sc >= 7
            else ref.NEGATIVE_COMMENTS
        )
        texts.append(pool[r % len(pool)].format(doctor=d[:1]) or None)
    names = who.name().to_pylist()
    phones = who.phone().to_pylist()
    stores = np.asarray([s[0] for s in ref.STORES])[ts_[sel]].tolist()
    items = np.asarray([c[0] for c in ref.CATALOG])[ti[sel]].tolist()
    channels = _pick(rng, n, ["短信", "微信", "问卷"]).to_pylist()
    style = rng.random(n)
    rows: list[list[object]] = []
    for i, sec in enumerate(st.tolist()):
        local = datetime(1970, 1, 1) + (np.timedelta64(sec, "s").item())
        when: object
        if style[i] < 0.05:
            when = round((sec / DAY) + 25569.0, 6)  # Excel serial number
        elif style[i] < 0.3:
            when = f"{local.year}/{local.month}/{local.day} {local:%H:%M:%S}"
        else:
            when = local
        phone: object = phones[i]
        if isinstance(phone, str) and style[i] > 0.97 and phone.isdigit():
            phone = int(phone)  # Excel turned the phone into a number
        rows.append(
            [
                f"R{i + 1:07d}",
                when,
                channels[i],
                names[i],
                phone,
                stores[i],
                items[i],
                "术后满意度回访",
                int(score[i]),
                texts[i],
            ]
        )
    truth.add("nps_survey", "feedback", _s([r[0] for r in rows]), pi)
    path = out_dir / "nps_survey.xlsx"
    _write_xlsx(
        rows,
        [
            "答卷编号",
            "提交答卷时间",
            "来源渠道",
            "姓名",
            "手机号",
            "就诊门店",
            "项目编码",
            "问卷名称",
            "推荐度",
            "意见建议",
        ],
        path,
    )
    add_file(path, "surveys", "nps_survey", "survey", n)


def _contact_sources(
    p: _People,
    rng_for: _RngFor,
    truth: _Truth,
    add_file: _AddFile,
    out_dir: Path,
    start_s: int,
    today_s: int,
) -> None:
    is_member = p.segment != PROSPECT
    # member master (会员主档): CSV
    rng = rng_for(40)
    pi = np.flatnonzero(is_member)
    pi = pi[np.argsort(p.join[pi], kind="stable")]
    n = len(pi)
    who = _Who(p, pi, rng)
    wechat_only = p.segment[pi] == SEGMENTS.index("wechat_only")
    keys = _num(100_000 + np.arange(1, n + 1))
    cols = {
        "contact_no": keys,
        "member_no": who.field("member_no"),
        "name": _null_where(who.name(typo=0.01), wechat_only),
        "gender": who.gender("num"),
        "birthday": _null_where(who.birthday(typo=0.01), wechat_only),
        "phone": who.phone(missing=wechat_only),
        "phone2": _mangle(rng, who.field("phone2"), 0.03, _dirty_phone),
        "email": who.field("email"),
        "city": who.field("city"),
        "store_code": who.store(),
        "observed_at": _ts(p.join[pi]),
        "wechat_unionid": who.field("unionid"),
        "wecom_external_userid": who.field("wecom"),
    }
    truth.add("crm_members", "contacts", keys, pi)
    headers = {
        "contact_no": "会员ID",
        "member_no": "会员卡号",
        "name": "姓名",
        "gender": "性别",
        "birthday": "生日",
        "phone": "手机号",
        "phone2": "备用手机号",
        "email": "邮箱",
        "city": "城市",
        "store_code": "开卡门店",
        "observed_at": "开卡时间",
        "wechat_unionid": "微信unionid",
        "wecom_external_userid": "外部联系人ID",
    }
    table = _with_duplicates(rng, pa.table({headers[c]: v for c, v in cols.items()}))
    path = out_dir / "crm_members.csv"
    _write_csv(table, path)
    add_file(path, "member_master", "crm_members", "offline", table.num_rows)

    # third-party list (异业合作名单): XLSX, kept small
    rng = rng_for(41)
    pick = (rng.random(p.n) < np.where(is_member, 0.04, 0.12)) & (
        p.segment != SEGMENTS.index("wechat_only")
    )
    pi = np.flatnonzero(pick)[:3_000]
    n = len(pi)
    who = _Who(p, pi, rng, dirty=0.05)
    names = who.name(typo=0.05).to_pylist()
    phones = who.phone().to_pylist()
    genders = who.gender("fm").to_pylist()
    origins = _pick(rng, n, ref.THIRD_PARTY_ORIGINS).to_pylist()
    when = start_s + (today_s - start_s) * rng.random(n)
    rows: list[list[object]] = []
    for i in range(n):
        sec = int(when[i])
        local = datetime(1970, 1, 1) + np.timedelta64(sec, "s").item()
        stamp: object = round(sec / DAY + 25569.0, 4) if i % 10 == 3 else local.strftime("%Y-%m-%d")
        rows.append(
            [
                f"TP{i + 1:06d}",
                names[i],
                phones[i],
                genders[i],
                str(p.city[pi[i]]),
                origins[i],
                stamp,
            ]
        )
    truth.add("partner_list", "contacts", _s([r[0] for r in rows]), pi)
    path = out_dir / "partner_list.xlsx"
    _write_xlsx(rows, ["名单编号", "姓名", "手机号", "性别", "城市", "来源", "采集时间"], path)
    add_file(path, "third_party_list", "partner_list", "third_party", n)


def _iso(secs_local: np.ndarray) -> pa.Array:
    return _jstr(
        _join(
            _ts(secs_local - UTC_OFFSET, "%Y-%m-%dT%H:%M:%S"),
            ".",
            _pad((secs_local * 7919) % 1000, 3),
            "Z",
        )
    )


def _events(
    p: _People, rng: np.random.Generator, truth: _Truth, path: Path, start_s: int, today_s: int
) -> None:
    """Tracking-SDK messages (Segment spec) from the website, H5 pages and the mini-program.

    Written in batches of people to bound memory at a million members."""
    anon = _s(_tokens(rng, p.n, 32, _HEX))  # one browser / device id per person
    online = np.flatnonzero(p.online)
    path.write_bytes(b"")
    for batch in np.array_split(online, max(1, math.ceil(len(online) / 150_000))):
        _event_batch(p, rng, truth, path, start_s, today_s, batch, anon)


def _event_batch(
    p: _People,
    rng: np.random.Generator,
    truth: _Truth,
    path: Path,
    start_s: int,
    today_s: int,
    online: np.ndarray,
    anon: pa.Array,
) -> None:
    is_member = p.segment != PROSPECT
    src = np.where(
        p.openid_mp[online] != "",
        np.where(rng.random(len(online)) < 0.7, 1, 0),
        np.where(rng.random(len(online)) < 0.6, 0, 2),
    )
    counts = rng.integers(3, 7, len(online))
    pi = np.repeat(online, counts)
    es = np.repeat(src, counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    j = np.arange(len(pi)) - np.repeat(first, counts)
    n = len(pi)
    base = np.maximum(p.join[pi] - 60 * DAY, start_s)
    t0 = np.repeat(
        (base[first] + (today_s - 30 * DAY - base[first]) * rng.random(len(online))).astype(
            np.int64
        ),
        counts,
    )
    et = np.minimum(
        t0 + j * rng.integers(20, 600, n) + (j >= 3) * rng.integers(0, 20 * DAY, n), today_s - 60
    )

    anon_id = pc.take(anon, pa.array(pi))
    identifies = (j == 2) & (rng.random(n) < np.where(is_member[pi], 0.8, 0.4))
    alias = (j == 3) & is_member[pi] & (es != 2) & (rng.random(n) < 0.5)
    track_names = np.asarray(
        ["Viewed Treatment", "Booked Appointment", "Submitted Lead Form", "Claimed Coupon"]
    )
    tn = track_names[rng.choice(4, size=n, p=[0.5, 0.15, 0.15, 0.2])]
    tn = np.where((es == 2) & (j == 1), "Submitted Lead Form", tn)
    etype = np.where(
        j == 0,
        np.where(es == 1, "screen", "page"),
        np.where(identifies, "identify", np.where(alias, "alias", "track")),
    )
    logged_in = is_member[pi] & ((j >= 3) | identifies) & (p.member_no[pi] != "")
    user_id = _null_where(_s(p.member_no[pi]), ~logged_in)

    item = rng.integers(0, len(ref.CATALOG), n)
    codes = np.asarray([c[0] for c in ref.CATALOG])[item]
    names = np.asarray([c[1] for c in ref.CATALOG])[item]
    prices = np.asarray([c[3] for c in ref.CATALOG])[item]
    props_track = _jobject(
        [
            ("item_code", _jstr(_s(codes))),
            ("item_name", _jstr(_s(names))),
            ("price", _num(prices)),
            (
                "store_code",
                _jstr(
                    _null_where(
                        _s(np.asarray([s[0] for s in ref.STORES])[p.home_store[pi]]),
                        tn != "Booked Appointment",
                    )
                ),
            ),
            (
                "coupon_id",
                _jstr(_null_where(_join("CP", _pad(item * 17 + 100, 4)), tn != "Claimed Coupon")),
            ),
        ]
    )
    path_s = _join("/items/", _s(codes))
    props_page = _jobject(
        [
            ("path", _jstr(path_s)),
            ("title", _jstr(_s(names))),
            ("url", _jstr(_join("https://m.mecdp-demo.cn", path_s))),
        ]
    )
    phone = _mangle(
        rng,
        _null_where(_s(p.phone[pi]), p.segment[pi] == SEGMENTS.index("wechat_only")),
        0.05,
        _dirty_phone,
    )
    traits = _jobject(
        [
            ("phone", _jstr(phone)),
            ("name", _jstr(_null_where(_s(p.name[pi]), rng.random(n) < 0.3))),
            ("email", _jstr(_null_where(_s(p.email[pi]), p.email[pi] == ""))),
            (
                "wechat_unionid",
                _jstr(_null_where(_s(p.unionid[pi]), (p.unionid[pi] == "") | (es != 1))),
            ),
            (
                "wechat_openid",
                _jstr(_null_where(_s(p.openid_mp[pi]), (p.openid_mp[pi] == "") | (es != 1))),
            ),
        ]
    )
    device_id = np.where(p.idfa[pi] != "", p.idfa[pi], p.oaid[pi])
    no_device = (device_id == "") | (es == 0)
    device = _null_where(
        _jobject(
            [
                ("advertisingId", _jstr(_s(device_id))),
                ("type", _jstr(_s(np.where(p.idfa[pi] != "", "ios", "android")))),
            ]
        ),
        no_device,
    )
    os_obj = _null_where(
        _jobject([("name", _jstr(_s(np.where(p.idfa[pi] != "", "iOS", "Android"))))]), no_device
    )
    ext = _null_where(
        _join(
            '[{"id":',
            _jstr(_s(p.unionid[pi])),
            ',"type":"wechat_unionid","collection":"users","encoding":"none"}]',
        ),
        (p.unionid[pi] == "") | (es != 1) | (etype != "identify"),
    )
    app = _null_where(
        _s(np.full(n, '{"name":"美丽诊所小程序","version":"3.2.1","build":"321"}')), es != 1
    )
    library = _s(
        np.asarray(
            [
                '{"name":"analytics.js","version":"4.1.0"}',
                '{"name":"analytics-miniprogram","version":"2.0.3"}',
                '{"name":"analytics.js","version":"4.1.0"}',
            ]
        )[es]
    )
    page_ctx = _null_where(props_page, es == 1)
    context = _jobject(
        [
            ("library", library),
            ("app", app),
            ("device", device),
            ("os", os_obj),
            ("page", page_ctx),
            ("externalIds", ext),
            ("locale", _jstr(_s(np.full(n, "zh-CN")))),
        ]
    )

    mid = _tokens(rng, n, 32, _HEX)
    message_id = _join(
        _s(np.strings.slice(mid, 0, 8)),
        "-",
        _s(np.strings.slice(mid, 8, 12)),
        "-4",
        _s(np.strings.slice(mid, 13, 16)),
        "-a",
        _s(np.strings.slice(mid, 17, 20)),
        "-",
        _s(np.strings.slice(mid, 20, 32)),
    )
    skew = np.where(rng.random(n) < 0.03, rng.integers(-3600, 3600, n), 0)
    sent = et + skew + rng.integers(1, 30, n)
    is_track, is_page = etype == "track", (etype == "page") | (etype == "screen")
    lines = _jobject(
        [
            ("type", _jstr(_s(etype))),
            ("messageId", _jstr(message_id)),
            (
                "anonymousId",
                _jstr(_null_where(anon_id, logged_in & (etype == "track") & (rng.random(n) < 0.2))),
            ),
            ("userId", _jstr(user_id)),
            ("previousId", _jstr(_null_where(anon_id, etype != "alias"))),
            ("event", _jstr(_null_where(_s(tn), ~is_track))),
            ("name", _jstr(_null_where(_s(np.where(es == 1, "项目详情", names)), ~is_page))),
            (
                "properties",
                _null_where(
                    pc.if_else(pa.array(is_track), props_track, props_page), ~(is_track | is_page)
                ),
            ),
            ("traits", _null_where(traits, etype != "identify")),
            ("context", context),
            ("timestamp", _iso(et + skew)),
            ("originalTimestamp", _iso(et + skew)),
            ("sentAt", _iso(sent)),
            ("_source", _jstr(_s(np.asarray([s for s, _ in EVENT_SOURCES])[es]))),
        ]
    )
    order = np.argsort(sent, kind="stable")
    replay = np.flatnonzero(rng.random(n) < 0.005)
    all_idx = np.concatenate([order, replay])
    pos = np.concatenate([np.arange(n), np.searchsorted(sent[order], sent[replay] + 120)])
    all_idx = all_idx[np.argsort(pos, kind="stable")]
    _write_jsonl(lines.take(pa.array(all_idx)), path, append=True)
    src_names = _s(np.asarray([s for s, _ in EVENT_SOURCES])[es])
    refs = _join(src_names, ":", message_id)
    truth.add_rows(refs, pi, "events", src_names)
