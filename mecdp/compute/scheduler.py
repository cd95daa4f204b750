"""The layering scheduler inside `mecdp serve`: recomputes every tag, score and tier on a
schedule, and is the one gate every full run of the server goes through.

The schedule is the ``compute_schedule`` setting:

* ``daily@03:00``: every day at that local time (the ``timezone`` setting, Asia/Shanghai);
* ``every:30m``: every interval after the server starts (units ``s``, ``m``, ``h``, ``d``);
* ``off``: no scheduled runs (``POST /v1/compute`` and `mecdp compute` still run).

Never two runs at once: a scheduled run that comes due while another run (from the API) is
still going is skipped, and a second request while one runs gets a `Conflict`. A failed run
is logged and kept in the status; the worker keeps its schedule.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from mecdp.errors import Conflict, InputError

if TYPE_CHECKING:
    from mecdp.compute.service import ComputeReport
    from mecdp.config import Settings
    from mecdp.store import Store

log = logging.getLogger("mecdp.compute.scheduler")

SETTING = "compute_schedule"
SCHEDULER_USER = "scheduler"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EVERY = re.compile(r"^every:(\d+)([smhd])$")
_DAILY = re.compile(r"^daily@(\d{1,2}):(\d{2})$")
_FORMS = "daily@HH:MM (local time), every:<n><s|m|h|d> or off"
# Longest wait between looks at the clock: a changed wall clock is noticed within it.
_MAX_SLEEP = 60.0
Progress = Callable[[str, int, int], None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Schedule:
    """A parsed ``compute_schedule``."""

    text: str
    kind: Literal["off", "every", "daily"]
    interval: timedelta | None = None  # every
    at: time | None = None  # daily, local time of day

    def next_after(self, moment: datetime, zone: ZoneInfo) -> datetime | None:
        """The first run strictly after `moment` (aware, UTC); None when off."""
        if self.kind == "every" and self.interval is not None:
            return moment + self.interval
        if self.kind == "daily" and self.at is not None:
            local = moment.astimezone(zone)
            candidate = datetime.combine(local.date(), self.at, tzinfo=zone)
            if candidate <= local:
                candidate = datetime.combine(local.date() + timedelta(days=1), self.at, zone)
            return candidate.astimezone(UTC)
        return None


def parse_schedule(text: str) -> Schedule:
    """``daily@03:00`` | ``every:30m`` | ``off``; an `InputError` naming the setting else."""
    value = text.strip().lower()
    if value == "off":
        return Schedule(value, "off")
    every = _EVERY.match(value)
    if every:
        seconds = int(every.group(1)) * _UNITS[every.group(2)]
        if seconds <= 0:
            raise InputError(
                f"{SETTING}: the interval must be positive, got {text!r}",
                field=SETTING,
                value=text,
                rule="schedule.interval",
            )
        return Schedule(value, "every", interval=timedelta(seconds=seconds))
    daily = _DAILY.match(value)
    if daily:
        hour, minute = int(daily.group(1)), int(daily.group(2))
        if hour > 23 or minute > 59:
            raise InputError(
                f"{SETTING}: no such time of day in {text!r}",
                field=SETTING,
                value=text,
                rule="schedule.time",
            )
        return Schedule(f"daily@{hour:02d}:{minute:02d}", "daily", at=time(hour, minute))
    raise InputError(
        f"{SETTING}: {text!r} is not a schedule; use {_FORMS}",
        field=SETTING,
        value=text,
        rule="schedule.format",
    )


def _iso(moment: datetime | None) -> str | None:
    """UTC as the store keeps it (naive ISO 8601)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() if moment else None


@dataclass
class RunRecord:
    """One run started by this process (scheduled or requested)."""

    trigger: str  # schedule, api
    started_at: datetime
    finished_at: datetime | None = None
    status: str = "running"  # running, done, failed
    run_id: str | None = None
    members: int | None = None
    seconds: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "status": self.status,
            "run_id": self.run_id,
            "members": self.members,
            "seconds": self.seconds,
            "error": self.error,
        }


@dataclass
class _Counters:
    done: int = 0
    failed: int = 0
    skipped: int = 0  # scheduled runs that came due while another run was going
    last: RunRecord | None = None
    current: RunRecord | None = None
    last_error: str | None = None
    next_run: datetime | None = None
    history: list[RunRecord] = field(default_factory=list)


def _noop(_label: str, _done: int, _total: int) -> None:
    return None


class ComputeScheduler:
    """Background worker (start/stop like the server's other workers) running `compute_all`
    on the ``compute_schedule``; `run_now` is the same gate for requested runs."""

    HISTORY = 20  # runs of this process kept in the status

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self.schedule = parse_schedule(settings.compute_schedule)
        self._zone = ZoneInfo(settings.timezone)
        self._run_lock = threading.Lock()  # held for the whole of one run
        self._state_lock = threading.Lock()  # guards _counters
        self._counters = _Counters()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None or self.schedule.kind == "off":
            return
        self._stopping.clear()
        with self._state_lock:
            self._counters.next_run = self.schedule.next_after(_utc_now(), self._zone)
        self._thread = threading.Thread(target=self._loop, name="mecdp-compute", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the schedule; a run in progress is let finish (it holds store cursors)."""
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join(timeout=600)
        self._thread = None
        with self._state_lock:
            self._counters.next_run = None

    # runs ----------------------------------------------------------------------------------

    def run_now(
        self,
        *,
        as_of: datetime | None = None,
        engine: str | None = None,
        user: str | None = None,
        trigger: str = "api",
        progress: Progress = _noop,
    ) -> ComputeReport:
        """Run `compute_all` now; `Conflict` if a run is already going."""
        if not self._run_lock.acquire(blocking=False):
            running = self._counters.current
            since = _iso(running.started_at) if running else None
            raise Conflict("a layering run is already in progress", running_since=since)
        try:
            return self._run(as_of, engine, user, trigger, progress)
        finally:
            self._run_lock.release()

    def _run(
        self,
        as_of: datetime | None,
        engine: str | None,
        user: str | None,
        trigger: str,
        progress: Progress,
    ) -> ComputeReport:
        from mecdp.compute.service import compute_all

        record = RunRecord(trigger=trigger, started_at=_utc_now())
        with self._state_lock:
            self._counters.current = record
        try:
            report = compute_all(
                self._store,
                workspace=self._settings.workspace,
                as_of=as_of,
                engine_name=engine or self._settings.engine,
                user=user,
                progress=progress,
            )
        except Exception as exc:
            self._finish(record, error=f"{type(exc).__name__}: {exc}")
            raise
        record.run_id, record.members, record.seconds = (
            report.run_id,
            report.members,
            report.seconds,
        )
        self._finish(record)
        return report

    def _finish(self, record: RunRecord, error: str | None = None) -> None:
        record.finished_at = _utc_now()
        record.status = "failed" if error else "done"
        record.error = error
        with self._state_lock:
            counters = self._counters
            counters.current = None
            counters.last = record
            if error:
                counters.failed += 1
                counters.last_error = error
            else:
                counters.done += 1
            counters.history = [record, *counters.history][: self.HISTORY]

    def _tick(self) -> None:
        """The scheduled run: skipped when another run is going; failures are kept."""
        if not self._run_lock.acquire(blocking=False):
            with self._state_lock:
                self._counters.skipped += 1
            log.warning("compute.scheduled_skipped: another layering run is in progress")
            return
        try:
            self._run(None, None, SCHEDULER_USER, "schedule", _noop)
        except Exception:
            log.exception("compute.scheduled_failed: the scheduled layering run failed")
        finally:
            self._run_lock.release()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            with self._state_lock:
                due = self._counters.next_run
            if due is None:
                return
            left = (due - _utc_now()).total_seconds()
            if left > 0:
                self._stopping.wait(min(left, _MAX_SLEEP))
                continue
            with self._state_lock:
                self._counters.next_run = self.schedule.next_after(_utc_now(), self._zone)
            self._tick()
            with self._state_lock:
                # a run longer than the interval: the missed runs are skipped, not caught up
                following = self._counters.next_run
                if following is not None and following <= _utc_now():
                    self._counters.next_run = self.schedule.next_after(_utc_now(), self._zone)

    # status --------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._run_lock.locked()

    def status(self) -> dict[str, Any]:
        with self._state_lock:
            c = self._counters
            next_run = c.next_run
            return {
                "schedule": self.schedule.text,
                "timezone": self._settings.timezone,
                "active": self._thread is not None,
                "running": c.current.to_dict() if c.current else None,
                "next_run_at": _iso(next_run),
                "next_run_local": next_run.astimezone(self._zone).isoformat() if next_run else None,
                "last_run": c.last.to_dict() if c.last else None,
                "last_error": c.last_error,
                "runs_done": c.done,
                "runs_failed": c.failed,
                "runs_skipped": c.skipped,
                "recent": [r.to_dict() for r in c.history],
            }
