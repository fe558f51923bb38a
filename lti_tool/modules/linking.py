"""The modules as linkable items: an LMS activity can show one module, graded by completion."""

from __future__ import annotations

from lti_tool.catalog.model import Catalog
from lti_tool.linking.registry import LinkableItem
from lti_tool.modules.services import gradable_for, module_key


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
        )
        for module in catalog.modules
    ]
