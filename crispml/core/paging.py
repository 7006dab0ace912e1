"""Pages of a list: every list in the product is read one page at a time, so its cost does not
grow with the rows behind it (a count, and one page in an index's order)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, Unpack

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")

PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int  # rows in the whole list
    number: int  # 1-based, within 1..pages
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def first(self) -> int:
        """The 1-based position of the page's first row (0 when the list is empty)."""
        return (self.number - 1) * self.size + 1 if self.items else 0

    @property
    def last(self) -> int:
        return self.first + len(self.items) - 1 if self.items else 0


def clamp(number: int, size: int, total: int) -> int:
    return min(max(1, number), max(1, -(-total // size)))


def fetch(
    s: Session,
    query: Select[Unpack[tuple[Any, ...]]],
    convert: Callable[[Any], T],
    *,
    number: int = 1,
    size: int = PAGE_SIZE,
    total: int | None = None,
    scalars: bool = True,
) -> Page[T]:
    """One page of ``query`` (which must be ordered, ties included, for pages to be stable).

    ``total`` is counted with the query's own filters unless the caller knows it. A page past
    the end shows the last page, so a list that shrank in another tab still shows rows."""
    size = min(max(1, size), MAX_PAGE_SIZE)
    if total is None:
        counted = select(func.count()).select_from(query.order_by(None).subquery())
        total = int(s.scalar(counted) or 0)
    number = clamp(number, size, total)
    paged = query.limit(size).offset((number - 1) * size)
    rows = s.scalars(paged) if scalars else s.execute(paged)
    return Page([convert(r) for r in rows], total, number, size)
