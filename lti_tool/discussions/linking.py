"""Each case scenario as a linkable item: an LMS activity for one group discussion."""

from __future__ import annotations

from lti_tool.catalog.model import Catalog, Text
from lti_tool.linking.registry import LinkableItem


def scenario_items(catalog: Catalog) -> list[LinkableItem]:
    return [
        LinkableItem(
            key=f"scenario:{scenario.id}",
            kind="scenario",
            title=Text(ja=f"{{事例|じれい}}：{scenario.title.ja}", en=f"Case: {scenario.title.en}"),
            description=Text(
                ja="グループで{話|はな}し{合|あ}う{事例|じれい}と{問|と}い。",
                en="A case and questions for group discussion.",
            ),
            endpoint="discussions.scenario",
            endpoint_values={"scenario_id": scenario.id},
        )
        for scenario in sorted(catalog.scenarios.values(), key=lambda s: s.id)
    ]
