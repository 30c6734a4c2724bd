"""Periodic jobs, declared once: Celery beat runs them in production, a thread in embedded mode."""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    """A job both schedulers run: ``task`` is the Celery task name, ``target`` its function."""

    task: str  # e.g. "usage.rollup"
    interval_seconds: float
    target: str  # "module:function", idempotent and without arguments

    def resolve(self) -> Callable[[], object]:
        module, _, attr = self.target.partition(":")
        fn = getattr(importlib.import_module(module), attr)
        # A Celery task object is callable and runs its body in this process.
        return cast(Callable[[], object], fn)


# The one list of periodic work; names are imported lazily, so this module imports nothing.
PERIODIC_JOBS: list[PeriodicJob] = [
    PeriodicJob("usage.rollup", 60.0, "app.usage.tasks:rollup"),
    PeriodicJob("costs.reprice", 60.0, "app.costs.tasks:reprice"),
    PeriodicJob("findings.evaluate", 60.0, "app.findings.tasks:evaluate"),  # after both above
    PeriodicJob("usage.retention", 3600.0, "app.usage.tasks:apply_retention"),
]


class EmbeddedScheduler:
    """Runs every registered job on its interval in one daemon thread (no Redis needed)."""

    def __init__(self, jobs: list[PeriodicJob] | None = None) -> None:
        self.jobs = list(PERIODIC_JOBS if jobs is None else jobs)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gpuledger-scheduler", daemon=True)
        self.runs: dict[str, int] = {job.task: 0 for job in self.jobs}

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        due = {job.task: time.monotonic() for job in self.jobs}
        while not self._stop.is_set():
            now = time.monotonic()
            for job in self.jobs:
                if now >= due[job.task]:
                    self._run(job)
                    due[job.task] = time.monotonic() + job.interval_seconds
            next_due = min(due.values(), default=now + 1.0)
            self._stop.wait(max(0.05, min(1.0, next_due - time.monotonic())))

    def _run(self, job: PeriodicJob) -> None:
        try:
            job.resolve()()
            self.runs[job.task] += 1
        except Exception:
            # A failing job must not stop the others; the next interval tries again.
            log.exception("periodic job %s failed", job.task)
