"""The shop's home page and the admin's profile page read in Chinese when the reader asks for it."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from recommendations.models import UserProfile
from recommendations.services.profiles.explanations import (
    encode_outlier_reason,
    note_texts,
    outlier_reason_text,
    segment_description,
    segment_name,
    segment_title,
)
from recommendations.services.profiles.texts import render_tags
from tests.recommendations.admin.test_profiles import shop_with_users

pytestmark = pytest.mark.django_db

CHINESE = {"HTTP_ACCEPT_LANGUAGE": "zh-Hans,zh;q=0.9,en;q=0.5"}

# Interface text of the home page (English) and what the Chinese page shows instead.
HOME_TEXTS = {
    "Trending in the shop": "本店热门趋势",
    "Popular now": "当前热门",
    "Demo shop": "演示商店",
    "Search products": "搜索商品",
    ">Search<": ">搜索<",
    ">Cart ": ">购物车 ",
    ">Log in<": ">登录<",
    ">Sign up<": ">注册<",
    "Welcome": "欢迎",
    "New in": "新品上架",
    "picked for you from what you browse": "根据您的浏览为您精选",
    "A demo storefront for the behaviour-driven recommender.": "行为驱动推荐系统的演示商店。",
}

# Interface text of the admin's profile page (headings, column heads, field labels, event types).
PROFILE_TEXTS = {
    "Tags and why": "标签及原因",
    ">weight<": ">权重<",
    ">because<": ">依据<",
    "Interest by category": "各品类的兴趣",
    "Activity and value": "活动与价值",
    ">Last active<": ">最近活跃<",
    "Current recommendations": "当前推荐",
    "Recent events": "最近事件",
    ">when<": ">时间<",
    ">what<": ">行为<",
    "Propensity source": "购买倾向来源",
    "Last activity at": "最近活动时间",
    "Outlier reason": "异常原因",
    "Model version": "模型版本",
    "User profile": "用户画像",
    ">View<": ">浏览<",
    ">Purchase<": ">购买<",
    ">Total spent<": ">消费总额<",
}


def _fan_of_books() -> UserProfile:
    shop_with_users(6)
    # in key order: the first fan (the fourth shopper) bought too, and the page shows its purchase
    # (the table's physical order changes once autovacuum has reclaimed earlier tests' rows)
    profiles = UserProfile.objects.order_by("pk")
    return next(p for p in profiles if any(t["label"] == "fan_of:Books" for t in p.tags))


def _catalogue(product_factory) -> None:
    product_factory.create_batch(12)


def test_home_page_follows_accept_language(client, product_factory):
    # given a catalogue, so the recommendation blocks have items
    _catalogue(product_factory)
    # when the home page is asked for in Chinese
    html = client.get(reverse("shop:home"), **CHINESE).content.decode()
    # then no English interface text is left and its Chinese counterpart is there
    assert 'class="rec-block"' in html
    assert '<html lang="zh-hans">' in html
    left = [english for english in HOME_TEXTS if english in html]
    missing = [chinese for chinese in HOME_TEXTS.values() if chinese not in html]
    assert left == [] and missing == []


def test_home_page_stays_english_by_default(client, product_factory):
    _catalogue(product_factory)
    html = client.get(reverse("shop:home")).content.decode()
    assert '<html lang="en">' in html
    assert "Trending in the shop" in html and "本店热门趋势" not in html


def test_language_switch_in_the_header_sets_the_language(client, product_factory):
    # given a shopper on the English home page with the switch in its header
    _catalogue(product_factory)
    home = client.get(reverse("shop:home")).content.decode()
    assert f'action="{reverse("set_language")}"' in home and 'value="zh-hans"' in home
    # when they choose 简体中文
    response = client.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    # then the cookie holds the choice and the next page is Chinese without any Accept-Language
    assert response.status_code == 302
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    html = client.get(reverse("shop:home")).content.decode()
    assert "本店热门趋势" in html and "Trending in the shop" not in html


def test_admin_profile_page_reads_in_chinese(client, staff_user):
    # given a profiled shopper tagged "fan of Books" and staff reading in Chinese
    profile = _fan_of_books()
    client.force_login(staff_user)
    # when the profile page is opened
    response = client.get(reverse("admin:recommendations_userprofile_change", args=[profile.pk]), **CHINESE)
    html = response.content.decode()
    # then the interface is Chinese, the tags and their features included
    assert response.status_code == 200
    left = [english for english in PROFILE_TEXTS if english in html]
    missing = [chinese for chinese in PROFILE_TEXTS.values() if chinese not in html]
    assert left == [] and missing == []
    with translation.override("en"):
        english_labels = [tag["label"] for tag in render_tags(profile.tags)]
    assert english_labels and not [label for label in english_labels if f">{label}<" in html]
    assert "Books 爱好者" in html
    assert "在 Books 的活动占比：" in html


def test_profiles_api_answers_in_the_readers_language(client):
    # given a shopper whose tags include "fan of Books"
    client.force_login(_fan_of_books().user)
    # when they read their own profile in Chinese and in English
    chinese = client.get("/api/profiles/me/", **CHINESE).json()
    english = client.get("/api/profiles/me/").json()
    # then the same stored codes read in each language
    assert {tag["code"] for tag in chinese["tags"]} == {tag["code"] for tag in english["tags"]}
    assert "Books 爱好者" in [tag["label"] for tag in chinese["tags"]]
    assert "fan of Books" in [tag["label"] for tag in english["tags"]]


def test_events_api_errors_follow_accept_language(client):
    response = client.post("/api/events/", data="{not json", content_type="application/json", **CHINESE)
    assert response.status_code == 400
    assert response.json()["detail"] == "JSON 格式错误。"


# Interface text of the recommender dashboard (headings, column heads, chart placeholders).
DASHBOARD_TEXTS = [
    "Events per day, by type (last 30 days)",
    "Click-through per placement and model version (percent of impressions)",
    ">placement<",
    ">impressions<",
    "No recommendations served yet.",
    "Segment sizes (shoppers per segment)",
    "Model metrics across versions",
    "No data yet.",
    ">View<",
    "Recommender dashboard",
]


def _profile_texts(profile: UserProfile) -> list[str]:
    """What the profile page says about ``profile`` beyond its fields, as the English page says it."""
    segment = profile.segment
    assert segment is not None
    return [
        segment_title(segment.number, segment.traits),
        segment_description(segment.traits),
        outlier_reason_text(profile.outlier_reason),
        *note_texts(profile.notes),
        *(tag["description"] for tag in render_tags(profile.tags)),
    ]


def _flagged_fan_of_books() -> UserProfile:
    profile = _fan_of_books()
    # the rebuild's own reason format (a shop of six shoppers has no outlier of its own)
    reason = encode_outlier_reason([{"code": "peak_events_per_minute", "value": 120.0, "median": 3.0}])
    UserProfile.objects.filter(pk=profile.pk).update(is_outlier=True, outlier_reason=reason)
    return UserProfile.objects.select_related("segment").get(pk=profile.pk)


def test_admin_profile_page_says_nothing_in_english_when_read_in_chinese(client, staff_user):
    # given a profiled shopper with a segment, notes from the rebuild and an outlier reason
    profile = _flagged_fan_of_books()
    assert profile.segment is not None and profile.notes
    client.force_login(staff_user)
    url = reverse("admin:recommendations_userprofile_change", args=[profile.pk])
    with translation.override("en"):
        english = _profile_texts(profile) + list(PROFILE_TEXTS)
    # when the page is read in English and in Chinese
    in_english = client.get(url).content.decode()
    in_chinese = client.get(url, **CHINESE).content.decode()
    # then every English sentence of the English page is gone from the Chinese one
    assert [text for text in english if text not in in_english] == []
    assert [text for text in english if text in in_chinese] == []
    with translation.override("zh-hans"):
        chinese = _profile_texts(profile)
    assert [text for text in chinese if text not in in_chinese] == []
    assert "疑似机器人的事件频率：一分钟内 120 个事件（中位数 3）" in in_chinese


def test_profiles_dashboard_says_nothing_in_english_when_read_in_chinese(client, staff_user):
    # given profiled shoppers (segments, events of the last weeks) and no trained model
    segment = _fan_of_books().segment
    assert segment is not None
    client.force_login(staff_user)
    with translation.override("en"):
        english = [*DASHBOARD_TEXTS, segment_title(segment.number, segment.traits)]
    # when the dashboard is read in English and in Chinese
    in_english = client.get("/admin/recommendations/dashboard/").content.decode()
    in_chinese = client.get("/admin/recommendations/dashboard/", **CHINESE).content.decode()
    # then
    assert [text for text in english if text not in in_english] == []
    assert [text for text in english if text in in_chinese] == []
    assert ">浏览<" in in_chinese and "暂无数据。" in in_chinese


def test_stored_codes_read_in_both_languages_and_old_sentences_as_written():
    traits = {
        "qualities": ["frequent"],
        "nouns": ["high_spenders"],
        "category": "Garden",
        "details": [
            {"feature": "frequency", "value": 4.0, "overall": 2.0},
            {"category": "Garden", "value": 0.6, "overall": 0.2},
        ],
        "ordinal": 2,
    }
    with translation.override("en"):
        assert segment_name(traits) == "Frequent high spenders, Garden (2)"
        assert segment_description(traits) == (
            "Compared with all users: frequency 4 (2.0x the average 2); "
            "Garden: 60% of activity (overall 20%)."
        )
        assert (
            outlier_reason_text("[]") == "unusual combination of behaviour (isolated from every dense group)"
        )
        assert note_texts([{"code": "unpriced_purchases", "params": {"count": 2}}]) == [
            "monetary: 2 purchases without a known price left out"
        ]
    with translation.override("zh-hans"):
        assert segment_name(traits) == "常购的高消费者，偏好Garden（2）"
        assert segment_description(traits) == (
            "与全体用户相比：购买频次 4（为平均值 2 的 2.0 倍）；Garden：占活动的 60%（总体 20%）。"
        )
        # rows written before codes: English sentences, shown as written in every language
        assert segment_name({}, "Frequent shoppers") == "Frequent shoppers"
        assert outlier_reason_text("bot-like event rate: 90 events") == "bot-like event rate: 90 events"
        assert note_texts(["no views: conversion rate unknown"]) == ["no views: conversion rate unknown"]


def test_experiment_results_read_in_chinese(client, staff_user, experiment_factory, arm_factory):
    # given an experiment with two arms
    experiment = experiment_factory(name="Home test")
    arm_factory(experiment=experiment, name="Alpha", share=50)
    arm_factory(experiment=experiment, name="Beta", share=50, strategy="covisitation")
    client.force_login(staff_user)
    url = reverse("admin:recommendations_experiment_results", args=[experiment.pk])
    english = ["Per-shopper metrics", "conversion (shoppers who bought)", "revenue per shopper", "(baseline)"]
    # when the results are read in English and in Chinese
    in_english = client.get(url).content.decode()
    in_chinese = client.get(url, **CHINESE).content.decode()
    # then every interface text follows the reader's language
    assert [text for text in english if text not in in_english] == []
    assert [text for text in english if text in in_chinese] == []
    assert "按顾客计算的指标" in in_chinese and "转化率（有购买的顾客比例）" in in_chinese
