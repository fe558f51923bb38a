"""The modules as linkable items: an LMS activity can show one module, graded by completion."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from lti_tool.catalog.model import Catalog
from lti_tool.linking.registry import LinkableItem
from lti_tool.modules.services import enable_completion_grade, gradable_for, module_key


def _grade_completion_of(module_id: str) -> Callable[[Session, int, dict[str, int]], None]:
    def placed(session: Session, course_id: int, _options: dict[str, int]) -> None:
        enable_completion_grade(session, course_id, module_id)

    return placed


def module_items(catalog: Catalog) -> list[LinkableItem]:
    return [
        LinkableItem(
            key=module_key(module.id),
            kind="module",
            title=module.title,
            description=module.description,
            endpoint="modules.module",
            endpoint_values={"module_id": module.id},
            gradable=gradable_for(module),
            on_placed=_grade_completion_of(module.id),
        )
        for module in catalog.modules
    ]
