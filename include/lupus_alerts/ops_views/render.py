"""Rendering the views with the autoescaped templates in `templates/ops/` and the SVG charts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from lupus_alerts.ops_views.common import (
    OUTCOMES,
)
from lupus_alerts.ops_views.dashboard import (
    DashboardView,
)
from lupus_alerts.ops_views.digest_run import DigestRunView
from lupus_alerts.ops_views.ingest_run import (
    IngestRunView,
)

if TYPE_CHECKING:
    import jinja2


# -- rendering ----------------------------------------------------------------------------------


def fmt_ts(value: datetime | None) -> str:
    """A stored (naive UTC) timestamp for people: minutes, and the zone said."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lupus_alerts", "templates/ops"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ts"] = fmt_ts
    env.filters["num"] = lambda v: "–" if v is None else str(v)
    env.globals["OUTCOMES"] = OUTCOMES
    return env


def _svg(markup: str) -> Any:
    import markupsafe

    # Built by svg_charts, which escapes every piece of text it puts in.
    return markupsafe.Markup(markup)


def render(template: str, base: str = "", **context: Any) -> str:
    """Render one of templates/ops/*.html.j2; `base` is the plugin's URL prefix for links."""
    return _env().get_template(template).render(base=base, **context)


def render_ingest_run(view: IngestRunView, *, dag_id: str, base: str = "") -> str:
    return render("ingest_run.html.j2", base, view=view, dag_id=dag_id)


def render_digest_run(view: DigestRunView, *, dag_id: str, base: str = "") -> str:
    return render("digest_run.html.j2", base, view=view, dag_id=dag_id)


def render_dashboard(
    view: DashboardView, *, topic_names: Mapping[str, str] | None = None, base: str = ""
) -> str:
    charts = {k: _svg(v) for k, v in view.charts.items()}
    return render("dashboard.html.j2", base, view=view, charts=charts, topic_names=topic_names or {})


def render_message(title: str, message: str, *, base: str = "") -> str:
    return render("message.html.j2", base, title=title, message=message)


@lru_cache(maxsize=4)
def topic_names(taxonomy_path: str | None) -> dict[str, str]:
    """Topic label -> display name from the taxonomy ({} if it cannot be read)."""
    from pathlib import Path

    from lupus_alerts import classify

    try:
        tax = classify.load_taxonomy(Path(taxonomy_path) if taxonomy_path else None)
    except (OSError, ValueError):
        return {}
    return {label.id: label.name for label in tax.labels.values()}
