"""The shipped catalogues: complete for Chinese, compiled (.mo matches .po), and a stored tag
code reads in both languages."""

from __future__ import annotations

import gettext
import shutil
import subprocess
from pathlib import Path

import pytest
from django.utils import translation

from recommendations.services.profiles.texts import render_tag, tag_key_label

ROOT = Path(__file__).resolve().parents[2]
CATALOGUES = sorted(ROOT.glob("*/locale/*/LC_MESSAGES/django.po"))

needs_msgfmt = pytest.mark.skipif(
    shutil.which("msgfmt") is None, reason="GNU gettext (msgfmt) is not installed"
)


def test_every_app_ships_english_and_chinese():
    assert {(p.parents[3].name, p.parents[1].name) for p in CATALOGUES} == {
        (app, language) for app in ("behavior", "recommendations", "shop") for language in ("en", "zh_Hans")
    }


@needs_msgfmt
@pytest.mark.parametrize("po", CATALOGUES, ids=lambda p: f"{p.parents[3].name}-{p.parents[1].name}")
def test_compiled_catalogue_is_up_to_date_and_chinese_is_complete(po: Path, tmp_path: Path):
    # when the .po is compiled afresh (with msgfmt's format checks)
    fresh = tmp_path / "django.mo"
    done = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", str(fresh), str(po)], capture_output=True, text=True
    )
    # then it compiles, the committed .mo holds the same messages, and no Chinese entry is left out
    assert done.returncode == 0, done.stderr
    with fresh.open("rb") as a, po.with_suffix(".mo").open("rb") as b:
        assert gettext.GNUTranslations(a)._catalog == gettext.GNUTranslations(b)._catalog  # type: ignore[attr-defined]
    if po.parents[1].name == "zh_Hans":
        assert "untranslated" not in done.stderr and "fuzzy" not in done.stderr, done.stderr


def test_a_stored_tag_code_reads_in_both_languages():
    tag = {
        "code": "fan_of",
        "label": "fan_of:Garden",
        "params": {"category": "Garden"},
        "weight": 1.0,
        "reasons": [{"feature": "affinity:Garden", "value": 0.8, "operator": ">", "threshold": 0.5}],
    }
    with translation.override("en"):
        english = render_tag(tag)
    with translation.override("zh-hans"):
        chinese = render_tag(tag)
    assert (english["label"], english["reasons"][0]["feature_label"]) == ("fan of Garden", "affinity:Garden")
    assert (chinese["label"], chinese["reasons"][0]["feature_label"]) == ("Garden 爱好者", "偏好：Garden")
    assert chinese["description"] == "超过一半的活动集中在 Garden。"
    assert english["key"] == chinese["key"] == "fan_of:Garden"


def test_old_english_rows_and_custom_rules_read_sensibly():
    # a profile stored before tags had codes (label and description in English)
    old = {"label": "high value", "weight": 3.0, "description": "Spent more.", "reasons": []}
    # a staff-defined rule: its label is data, shown as written in every language
    custom = {
        "code": "",
        "label": "vip",
        "description": "Our best",
        "params": {},
        "weight": 1.0,
        "reasons": [],
    }
    with translation.override("zh-hans"):
        assert render_tag(old)["label"] == "高价值客户"
        assert render_tag({"label": "fan of Books", "reasons": []})["label"] == "Books 爱好者"
        assert (render_tag(custom)["label"], render_tag(custom)["description"]) == ("vip", "Our best")
        assert tag_key_label("loyal") == "忠实客户"
        assert tag_key_label("fan_of:Books") == "Books 爱好者"
        assert tag_key_label("vip: gold") == "vip: gold"
