"""The registry of linkable items. Each feature registers a provider of its items when the app
is built; the picker lists whatever the registry holds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from flask import current_app
from flask_babel import LazyString
from sqlalchemy.orm import Session

from lti_tool.catalog.model import Text
from lti_tool.grading.services import Gradable


@dataclass(frozen=True)
class ItemOption:
    """A setting the instructor chooses in the picker (stored with the placement)."""

    name: str
    label: LazyString
    default: int
    minimum: int
    maximum: int
    unit: str = ""


@dataclass(frozen=True)
class LinkableItem:
    key: str
    kind: str
    title: Text
    description: Text
    # The page the item opens: an endpoint and its URL values.
    endpoint: str
    endpoint_values: Mapping[str, str] = field(default_factory=dict)
    gradable: Gradable | None = None
    options: tuple[ItemOption, ...] = ()
    # Called when an instructor places the item in a course, with the options chosen.
    on_placed: Callable[[Session, int, dict[str, int]], None] | None = None


Provider = Callable[[], Iterable[LinkableItem]]


class LinkRegistry:
    def __init__(self) -> None:
        self._providers: list[Provider] = []

    def add_provider(self, provider: Provider) -> None:
        self._providers.append(provider)

    def items(self) -> list[LinkableItem]:
        return [item for provider in self._providers for item in provider()]

    def get(self, key: str) -> LinkableItem | None:
        return next((item for item in self.items() if item.key == key), None)


def registry() -> LinkRegistry:
    found: LinkRegistry = current_app.extensions["tsunagu.links"]
    return found
