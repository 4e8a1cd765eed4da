"""A job run every ``interval`` seconds in a background task of the server's event loop (the
expiry sweeper and the retention pass): ``start`` / ``stop``, and a failed round is logged and
retried at the next interval."""

from __future__ import annotations

import asyncio
import logging


class Periodic:
    """Subclasses give ``round`` (one run of the job), ``logger`` and ``what`` (for the log)."""

    logger: logging.Logger
    what: str

    def __init__(self, *, interval: float) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def round(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            try:
                await self.round()
            except Exception:  # CancelledError (stop) is not an Exception: it ends the loop
                self.logger.exception(
                    "The %s failed; it is retried in %s s.", self.what, self.interval
                )
            await asyncio.sleep(self.interval)
