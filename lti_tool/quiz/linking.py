"""The completion test as a linkable item, graded, with its pass mark chosen in the picker."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from lti_tool.catalog.model import Catalog, Text
from lti_tool.linking.registry import ItemOption, LinkableItem
from lti_tool.quiz.services import QUIZ_KEY, apply_placement_options, gradable


def quiz_items(catalog: Catalog) -> list[LinkableItem]:
    if not catalog.questions:
        return []
    return [
        LinkableItem(
            key=QUIZ_KEY,
            kind="quiz",
            title=Text(
                ja="{修了|しゅうりょう}{認定|にんてい}テスト", en="Completion certification test"
            ),
            description=Text(
                ja="A〜Eの{全|ぜん}{領域|りょういき}から{出題|しゅつだい}される{修了|しゅうりょう}{認定|にんてい}テスト。",
                en="The completion certification test, drawing questions from areas A to E.",
            ),
            endpoint="quiz.index",
            gradable=gradable(),
            options=(ItemOption("pass_percent", _l("Pass mark"), 70, 1, 100, "%"),),
            on_placed=lambda session, course_id, options: apply_placement_options(
                session, catalog, course_id, options
            ),
        )
    ]
