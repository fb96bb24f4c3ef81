"""Sign-up, login and logout pages."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse


@pytest.mark.django_db
def test_signup_creates_the_account_and_signs_in(client):
    # when a new shopper signs up
    form = client.get(reverse("shop:signup"))
    response = client.post(
        reverse("shop:signup"),
        {
            "username": "newbie",
            "email": "newbie@example.com",
            "password1": "a-long-pass-phrase-42",
            "password2": "a-long-pass-phrase-42",
        },
    )
    # then the account exists and the browser is signed in
    assert form.status_code == 200
    assert response.status_code == 302 and response.url == reverse("shop:home")
    user = get_user_model().objects.get(username="newbie")
    assert user.email == "newbie@example.com"
    assert int(client.session["_auth_user_id"]) == user.pk


@pytest.mark.django_db
def test_signup_with_mismatched_passwords_is_a_400_naming_the_field(client):
    # when / then
    response = client.post(
        reverse("shop:signup"),
        {"username": "newbie", "password1": "a-long-pass-phrase-42", "password2": "different-phrase-42"},
    )
    assert response.status_code == 400
    assert "password2" in response.context["form"].errors
    assert not get_user_model().objects.filter(username="newbie").exists()


@pytest.mark.django_db
def test_login_and_logout_by_post(client, user_factory):
    # given an account
    user_factory(username="dana")
    # when logging in through the page, then out with a POST
    page = client.get(reverse("shop:login"))
    logged_in = client.post(reverse("shop:login"), {"username": "dana", "password": "secret-pass-123"})
    home = client.get(reverse("shop:home"))
    logged_out = client.post(reverse("shop:logout"))
    # then each step behaves as a shopper expects
    assert page.status_code == 200
    assert logged_in.status_code == 302 and logged_in.url == reverse("shop:home")
    assert "Hi, dana" in home.content.decode()
    assert logged_out.status_code == 302
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_login_with_a_wrong_password_shows_the_form_again(client, user_factory):
    # given / when / then
    user_factory(username="dana")
    response = client.post(reverse("shop:login"), {"username": "dana", "password": "wrong"})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_logout_by_get_is_refused(client, user):
    # given a signed-in shopper / when GET logout / then 405 and still signed in
    client.force_login(user)
    assert client.get(reverse("shop:logout")).status_code == 405
    assert "_auth_user_id" in client.session
