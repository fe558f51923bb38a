"""Case scenarios: validation, pages for trainees and instructors, linkable items."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from lti_tool.catalog.loader import ContentInvalid, load_catalog
from lti_tool.linking.registry import LinkRegistry

FIXTURES = Path(__file__).parent.parent / "fixtures"
FILE = "scenarios/s01-unpaid-overtime.yaml"


def token_of(page) -> str:
    return parse_qs(urlsplit(page.url).query)["ts"][0]


def test_scenarios_load_beside_the_content():
    catalog = load_catalog(FIXTURES / "content")
    scenario = catalog.scenarios["s01-unpaid-overtime"]
    assert scenario.areas == ("B", "D") and len(scenario.prompts) == 3
    assert "<ruby>工場" in scenario.situation_for("ja")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "areas: [B, D]",
            "areas: [B, X]",
            f"{FILE}:5: scenario s01-unpaid-overtime: areas must list letters A–E",
        ),
        (
            '  - ja: "{本人|ほんにん}',
            '  - ja: "{本人|ほ|ん|に}',
            "scenarios/s01-unpaid-overtime.yaml:17: ruby",
        ),
        (
            "sources: [S0]",
            "sources: [S404]",
            f"{FILE}:22: scenario s01-unpaid-overtime: unknown source 'S404'",
        ),
        (
            "id: s01-unpaid-overtime",
            "id: s02-other",
            "scenarios/s01-unpaid-overtime.yaml:1: id 's02-other' differs from the file name",
        ),
    ],
)
def test_scenario_problems_are_named(tmp_path, old, new, expected):
    shutil.copytree(FIXTURES / "content", tmp_path / "content")
    shutil.copytree(FIXTURES / "scenarios", tmp_path / "scenarios")
    path = tmp_path / "scenarios" / "s01-unpaid-overtime.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ContentInvalid) as caught:
        load_catalog(tmp_path / "content")
    found = [str(p) for p in caught.value.problems]
    assert any(p.startswith(expected) for p in found), found


def test_trainees_read_the_scenario_instructors_also_see_good_practice(
    browser, reg, learner, instructor
):
    trainee = browser.launch(reg, learner)
    page = browser.get(f"/scenarios/s01-unpaid-overtime?ts={token_of(trainee)}")
    assert page.status_code == 200
    assert "残業" in page.text and 'id="practice-title"' not in page.text
    staff = browser.launch(reg, instructor)
    page = browser.get(f"/scenarios/s01-unpaid-overtime?ts={token_of(staff)}")
    assert 'id="practice-title"' in page.text
    assert browser.get(f"/scenarios/s99-none?ts={token_of(staff)}").status_code == 404
    listing = browser.get(f"/scenarios/?ts={token_of(trainee)}")
    assert "s01-unpaid-overtime" in listing.text


def test_each_scenario_is_a_linkable_item(app):
    registry: LinkRegistry = app.extensions["tsunagu.links"]
    item = registry.get("scenario:s01-unpaid-overtime")
    assert item is not None and item.gradable is None
    assert item.endpoint == "discussions.scenario"
