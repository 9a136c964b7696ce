"""The test factories stay in step with what they build."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from factories import PaperFields, make_feed_item, make_paper, make_settings

from lupus_alerts.config import FeedConfig
from lupus_alerts.models import Paper


def test_paper_fields_name_every_field_of_paper_with_its_type() -> None:
    # A field added to Paper but not here could not be overridden in a type-checked test.
    assert list(PaperFields.__annotations__) == [f.name for f in dataclasses.fields(Paper)]
    assert typing.get_type_hints(PaperFields) == {
        k: v for k, v in typing.get_type_hints(Paper).items() if k in PaperFields.__annotations__
    }


def test_overrides_replace_the_defaults_and_each_paper_has_its_own_lists() -> None:
    a, b = make_paper(), make_paper(pmid="41000002", doi=None)
    assert (b.pmid, b.doi, b.title) == ("41000002", None, a.title)
    a.mesh.clear()
    assert b.mesh  # the default lists are not shared between papers
    item = make_feed_item("sage", title="Another title")
    assert (item.source, item.pmid, item.title, item.url) == (
        "feed:sage",
        None,
        "Another title",
        "https://journals.example/sage/item-1",
    )


def test_make_settings_takes_sections_and_feed_configs(tmp_path: Path) -> None:
    feed = FeedConfig(id="lupus", name="Lupus", publisher="SAGE", url="https://example.org/l.rss")
    settings = make_settings(tmp_path, feeds=[feed], digest={"timezone": "Pacific/Auckland"}, data_dir="d")
    assert settings.feeds == [feed]
    assert settings.digest.timezone == "Pacific/Auckland"
    assert settings.data_dir == (tmp_path / "d").resolve()
