"""Pages of a list: every list in the product is read one page at a time, so its cost does not
grow with the rows behind it (a count, and one page in an index's order)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, literal, select
from sqlalchemy.orm import Session

T = TypeVar("T")

PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Rows counted beyond the page's start, at most: a count's cost stays bounded however long the
# list grows ("1 to 50 of more than 2,000"); going deeper counts further.
COUNT_AHEAD = 2_000


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int  # rows in the whole list (or counted so far, when ``more``)
    number: int  # 1-based, within 1..pages
    size: int
    more: bool = False  # the list goes on beyond ``total`` rows

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
    query: Select[*tuple[Any, ...]],
    convert: Callable[[Any], T],
    *,
    number: int = 1,
    size: int = PAGE_SIZE,
    total: int | None = None,
    scalars: bool = True,
) -> Page[T]:
    """One page of ``query`` (which must be ordered, ties included, for pages to be stable).

    ``total`` is counted with the query's own filters, up to COUNT_AHEAD rows beyond the page's
    start, unless the caller knows it. A page past the end shows the last page, so a list that
    shrank in another tab still shows rows."""
    size = min(max(1, size), MAX_PAGE_SIZE)
    more = False
    if total is None:
        cap = (max(1, number) - 1) * size + COUNT_AHEAD
        # Counting reads no row's columns: an index that filters can answer it alone.
        keys = query.with_only_columns(literal(1), maintain_column_froms=True)
        bounded = keys.order_by(None).limit(cap + 1).subquery()
        counted = int(s.scalar(select(func.count()).select_from(bounded)) or 0)
        more, total = counted > cap, min(counted, cap)
    number = clamp(number, size, total)
    paged = query.limit(size).offset((number - 1) * size)
    rows = s.scalars(paged) if scalars else s.execute(paged)
    return Page([convert(r) for r in rows], total, number, size, more)
