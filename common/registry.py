"""Named registries of components (planners, encoders, predictors, policies, ...): one style
for all of them. A name is taken once; an unknown name is refused naming the setting and every
choice.

    PREDICTORS = Registry("predictor", "model.predictor")

    @PREDICTORS.register("mlp")
    class MLPPredictor(nn.Module): ...

    PREDICTORS.get("mlp")        # the class
    PREDICTORS.get("mpl")        # ValueError: unknown model.predictor 'mpl'; choose one of [...]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Components of one ``kind`` by name, in the order they were added.

    Args:
        kind: what a component is, for messages ("planner").
        setting: the config key that names one ("plan.planner.name"), for messages.
    """

    def __init__(self, kind: str, setting: str) -> None:
        self.kind, self.setting = kind, setting
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        """Register ``item`` under ``name``; a name already taken is refused."""
        if name in self._items:
            raise ValueError(f"a {self.kind} named {name!r} is already registered "
                             f"({self._describe(self._items[name])}); pick another name")
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of ``add``."""
        return lambda item: self.add(name, item)

    def get(self, name: str) -> T:
        """The component called ``name``.

        Raises:
            ValueError: naming the setting, the unknown name and every registered one.
        """
        if name not in self._items:
            raise ValueError(f"unknown {self.setting} {name!r}; choose one of {list(self)}")
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self)})"

    @staticmethod
    def _describe(item: object) -> str:
        return getattr(item, "__name__", None) or type(item).__name__
