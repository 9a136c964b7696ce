"""The shipped feed registry in lupus-alerts.yaml: the journals the issue asks for, sane flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from lupus_alerts.config import FeedConfig, load_config

REPO = Path(__file__).parent.parent.parent
REQUIRED = {
    "Lupus",
    "Lupus Science & Medicine",
    "Annals of the Rheumatic Diseases",
    "Arthritis & Rheumatology",
    "Rheumatology (Oxford)",
    "Nature Reviews Rheumatology",
    "The Lancet Rheumatology",
    "Arthritis Research & Therapy",
    "RMD Open",
    "Seminars in Arthritis and Rheumatism",
    "The Journal of Rheumatology",
    "Clinical Rheumatology",
    "Frontiers in Immunology",
    "Kidney International",
}


@pytest.fixture(scope="module")
def registry() -> list[FeedConfig]:
    return load_config(REPO / "lupus-alerts.yaml").feeds


def test_registry_lists_every_required_journal(registry: list[FeedConfig]) -> None:
    assert REQUIRED - {f.name for f in registry} == set()


def test_only_lupus_journals_skip_the_relevance_filter(registry: list[FeedConfig]) -> None:
    assert {f.name for f in registry if f.all_lupus} == {"Lupus", "Lupus Science & Medicine"}


def test_every_feed_url_is_https_and_unverified_ones_are_documented(registry: list[FeedConfig]) -> None:
    doc = (REPO / "docs" / "feeds.md").read_text(encoding="utf-8")
    for f in registry:
        assert f.url.startswith("https://"), f.id
        if not f.verified:
            assert f.url in doc, f"{f.id}: unverified URL must be listed in docs/feeds.md"
