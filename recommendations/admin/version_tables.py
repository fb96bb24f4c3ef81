"""The model version page's sections as tables staff can read (the raw JSON stays, folded away).

Small functions, each one field of ``ModelVersionAdmin``: metrics of the new model beside the
baselines and the previously active version, hyperparameters and the training report as
name/value rows, artefact files with their checksums.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

from recommendations.models import ModelVersion

# Metrics that count things (shown as whole numbers, not as percents).
_COUNT_SUFFIXES = ("users", "items", "events", "count", "size")


def _raw(value: Any) -> SafeString:
    """The stored JSON, folded: engineers still find every detail, staff see the table first."""
    return format_html(
        '<details class="rec-raw"><summary>{}</summary><pre>{}</pre></details>',
        gettext("raw JSON"),
        json.dumps(value, indent=2, sort_keys=True, default=str),
    )


def metric_value(name: str, value: Any) -> str:
    """A metric as read: rates in percent with one decimal, counts as whole numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else str(value)
    if name.lower().endswith(_COUNT_SUFFIXES) or value > 1:
        return f"{value:,.0f}"
    return f"{100 * value:.1f}%"


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def metrics_table(obj: ModelVersion) -> SafeString:
    """One row per metric: this version, each baseline and the previously active version."""
    baselines = dict(obj.baseline_metrics or {})
    columns: list[tuple[str, Mapping[str, Any]]] = [(gettext("this version"), obj.metrics or {})]
    names = {"popularity": gettext("popularity"), "covisitation": gettext("co-visitation")}
    columns += [(names.get(str(key), str(key)), value or {}) for key, value in sorted(baselines.items())]
    if obj.active_metrics:
        label = gettext("previously active")
        if obj.compared_with is not None:
            label = gettext("previously active (v%(number)s)") % {"number": obj.compared_with.number}
        columns.append((label, obj.active_metrics))
    metrics = sorted({name for _, values in columns for name in values})
    if not metrics:
        return format_html("{}", "—")
    head = format_html_join("", "<th>{}</th>", ((label,) for label, _ in columns))
    rows = format_html_join(
        "",
        "<tr><th scope='row'>{}</th>{}</tr>",
        (
            (
                name,
                format_html_join(
                    "", "<td>{}</td>", ((metric_value(name, values.get(name)),) for _, values in columns)
                ),
            )
            for name in metrics
        ),
    )
    stored = {"metrics": obj.metrics, "baselines": obj.baseline_metrics, "previous": obj.active_metrics}
    return format_html(
        '<table class="rec-metrics"><thead><tr><th>{}</th>{}</tr></thead><tbody>{}</tbody></table>{}',
        gettext("metric"),
        head,
        rows,
        _raw(stored),
    )


def _not_a_table(value: Any) -> SafeString | None:
    """What to show instead of a table: a dash when empty, the raw JSON when not an object."""
    if not value:
        return format_html("{}", "—")
    return None if isinstance(value, Mapping) else _raw(value)


def key_value_table(value: Any) -> SafeString:
    """A JSON object as name/value rows (nested values compact), the whole JSON folded below."""
    instead = _not_a_table(value)
    if instead is not None:
        return instead
    rows = format_html_join(
        "",
        "<tr><th scope='row'>{}</th><td>{}</td></tr>",
        ((key, _plain(item)) for key, item in sorted(value.items())),
    )
    return format_html('<table class="rec-key-values"><tbody>{}</tbody></table>{}', rows, _raw(value))


def files_table(value: Any) -> SafeString:
    """Artefact files and their SHA-256 checksums (shortened; the title holds the whole one)."""
    instead = _not_a_table(value)
    if instead is not None:
        return instead
    rows = [
        format_html('<tr><td>{}</td><td><code title="{}">{}…</code></td></tr>', name, digest, digest[:12])
        for name, digest in sorted((str(k), str(v)) for k, v in value.items())
    ]
    return format_html(
        '<table class="rec-files"><thead><tr><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>',
        gettext("file"),
        gettext("SHA-256"),
        mark_safe("".join(rows)),  # each row escaped by format_html
    )
