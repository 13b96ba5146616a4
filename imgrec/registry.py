"""A tiny name -> object registry used for every extensible kind in imgrec.

Filled by a decorator, strict on duplicates, and an unknown name answers with close matches::

    ARCHS = Registry("architecture", list_hint="imgrec architectures")

    @ARCHS.register("small_resnet")
    def small_resnet(num_classes: int): ...

    ARCHS.get("small_resnt")  # UnknownNameError: ... did you mean 'small_resnet'?
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from imgrec.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects of one kind (architectures, dataset formats, presets...)."""

    def __init__(self, kind: str, *, list_hint: str = "") -> None:
        self.kind = kind
        self.list_hint = list_hint
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that adds ``obj`` under ``name``; a duplicate name is a programming error."""

        def add(obj: T) -> T:
            self.add(name, obj)
            return obj

        return add

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"duplicate {self.kind} name {name!r}")
        self._items[name] = obj

    def replace(self, name: str, obj: T) -> T:
        """Put ``obj`` in place of the registered ``name`` (benchmarks trying a variant in
        their own process); returns the object it replaced. Unknown names raise as in
        :meth:`get`: a replacement never adds a name."""
        old = self.get(name)
        self._items[name] = obj
        return old

    def get(self, name: str) -> T:
        """Return the object for ``name`` or raise ``UnknownNameError`` with suggestions."""
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._items, n=3, cutoff=0.5)
            did_you_mean = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            how = f"run `{self.list_hint}` to list them" if self.list_hint else ""
            names = ", ".join(sorted(self._items)[:12])
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{did_you_mean}",
                hint=how or f"known: {names}",
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())
