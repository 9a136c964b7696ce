"""The dashboard's server-side SVG bar charts: well-formed, proportional, escaped, honest when empty."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from lupus_alerts import svg_charts
from lupus_alerts.svg_charts import Series, axis, horizontal_bars, nice_max, stacked_bars

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything that is not well-formed XML
    assert root.tag == f"{NS}svg"
    return root


def bars(root: ET.Element) -> list[ET.Element]:
    return [r for r in root.iter(f"{NS}rect") if r.get("class") == "bar"]


def test_stacked_bars_are_valid_svg_with_one_rect_per_nonzero_value() -> None:
    root = parse(
        stacked_bars(["d1", "d2", "d3"], [Series("PubMed", [3, 0, 5]), Series("Lupus", [1, 2, 0])], title="t")
    )
    got = sorted((b.get("data-category"), b.get("data-series"), b.get("data-value")) for b in bars(root))
    assert got == [("d1", "Lupus", "1"), ("d1", "PubMed", "3"), ("d2", "Lupus", "2"), ("d3", "PubMed", "5")]


def test_bar_heights_are_proportional_to_the_values_on_a_zero_based_axis() -> None:
    root = parse(stacked_bars(["a", "b", "c"], [Series("s", [2, 4, 7])], title="t", plot_height=200))
    h = {b.get("data-category"): float(b.get("height")) for b in bars(root)}
    assert h["b"] == pytest.approx(2 * h["a"]) and h["c"] == pytest.approx(3.5 * h["a"])
    # 7 is drawn against an axis topped at 8 (steps of 2): 7/8 of the plot's height.
    assert h["c"] == pytest.approx(200 * 7 / 8)


def test_stacked_segments_sit_on_each_other() -> None:
    root = parse(stacked_bars(["a"], [Series("x", [3]), Series("y", [1])], title="t", plot_height=100))
    x, y = sorted(bars(root), key=lambda b: b.get("data-series"))
    # y is drawn on top of x: its bottom edge is x's top edge.
    assert float(y.get("y")) + float(y.get("height")) == pytest.approx(float(x.get("y")))
    assert float(x.get("height")) == pytest.approx(3 * float(y.get("height")))


def test_horizontal_bars_are_proportional_and_carry_value_labels() -> None:
    svg = horizontal_bars(
        [("nephrology", 10), ("skin", 5), ("none", 0)], title="t", value_labels=["ten", "five", "zero"]
    )
    root = parse(svg)
    w = {b.get("data-category"): float(b.get("width")) for b in bars(root)}
    assert w["nephrology"] == pytest.approx(2 * w["skin"]) and w["none"] == 0
    values = [t.text for t in root.iter(f"{NS}text") if t.get("class") == "value"]
    assert values == ["ten", "five", "zero"]


HOSTILE = "<script>alert(\"x\")</script> & 'quotes' \x00\x1b"


def test_every_label_is_escaped_so_hostile_names_stay_text() -> None:
    for svg in (
        stacked_bars([HOSTILE], [Series(HOSTILE, [1])], title=HOSTILE),
        horizontal_bars([(HOSTILE, 1)], title=HOSTILE, value_labels=[HOSTILE]),
        horizontal_bars([], title=HOSTILE, empty_message=HOSTILE),
    ):
        assert "<script>" not in svg and "\x00" not in svg
        root = parse(svg)  # control characters are dropped, so the XML stays well-formed
        assert root.find(f"{NS}title").text == HOSTILE.replace("\x00", "").replace("\x1b", "")
        assert not list(root.iter(f"{NS}script"))


@pytest.mark.parametrize(
    "svg",
    [
        stacked_bars([], [], title="Papers"),
        stacked_bars(["a", "b"], [Series("s", [0, 0])], title="Papers"),
        horizontal_bars([], title="Papers", empty_message="No papers."),
    ],
)
def test_no_data_draws_no_bars_and_says_so(svg: str) -> None:
    root = parse(svg)
    assert bars(root) == []
    (empty,) = [t for t in root.iter(f"{NS}text") if t.get("class") == "empty"]
    assert empty.text.startswith("No ")


def test_mismatched_or_negative_series_are_refused() -> None:
    with pytest.raises(ValueError, match="2 values for 3 categories"):
        stacked_bars(["a", "b", "c"], [Series("s", [1, 2])], title="t")
    with pytest.raises(ValueError, match="negative"):
        stacked_bars(["a"], [Series("s", [-1])], title="t")
    with pytest.raises(ValueError, match="negative"):
        horizontal_bars([("a", -1)], title="t")
    with pytest.raises(ValueError, match="one entry per row"):
        horizontal_bars([("a", 1)], title="t", colours=[])


@pytest.mark.parametrize(
    ("value", "top", "step"),
    [
        (0, 1, 1),
        (1, 1, 1),
        (3, 3, 1),
        (4, 4, 1),
        (7, 8, 2),
        (10, 10, 5),
        (23, 30, 10),
        (242, 300, 100),
        (0.3, 0.3, 0.1),
        (180, 200, 50),
    ],
)
def test_the_axis_is_whole_steps_of_a_round_number(value: float, top: float, step: float) -> None:
    assert axis(value) == pytest.approx((top, step))
    assert nice_max(value) == pytest.approx(top)


def test_tick_labels_are_the_steps_of_the_axis() -> None:
    root = parse(stacked_bars(["a"], [Series("s", [242])], title="t"))
    ticks = [t.text for t in root.iter(f"{NS}text") if t.get("class") == "tick"]
    assert ticks == ["0", "100", "200", "300"]


def test_the_charts_load_nothing_from_elsewhere() -> None:
    svg = stacked_bars(["a"], [Series("s", [1])], title="t") + horizontal_bars([("a", 1)], title="t")
    assert "href" not in svg and "http://" not in svg.replace("http://www.w3.org/2000/svg", "")
    assert "<script" not in svg and svg_charts.PALETTE
