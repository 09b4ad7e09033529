"""What every background worker shares: ``with worker:`` starts it and stops it."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Running:
    """Mixin for classes with ``start()`` and ``stop()``: usable as a context manager."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
