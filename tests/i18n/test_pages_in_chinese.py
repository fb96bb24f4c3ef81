"""The shop's home page and the admin's profile page read in Chinese when the reader asks for it."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from recommendations.models import UserProfile
from recommendations.services.profiles.texts import render_tags
from tests.recommendations.admin.test_profiles import shop_with_users

pytestmark = pytest.mark.django_db

CHINESE = {"HTTP_ACCEPT_LANGUAGE": "zh-Hans,zh;q=0.9,en;q=0.5"}

# Interface text of the home page (English) and what the Chinese page shows instead.
HOME_TEXTS = {
    "Recommended for you": "为您推荐",
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
    ">Features<": ">特征<",
    ">feature<": ">特征<",
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
    "monetary": "消费金额",
}


def _fan_of_books() -> UserProfile:
    shop_with_users(6)
    return next(p for p in UserProfile.objects.all() if any(t["label"] == "fan_of:Books" for t in p.tags))


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
    assert "Recommended for you" in html and "为您推荐" not in html


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
    assert "为您推荐" in html and "Recommended for you" not in html


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
    assert "偏好：Books = " in html


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
