"""Forms of the demo shop."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.utils.translation import gettext_lazy as _


class CheckoutForm(forms.Form):
    """Guest checkout needs an email; signed-in shoppers may leave it empty (their own is used)."""

    email = forms.EmailField(required=False, label=_("Email for the receipt"))

    def __init__(self, *args, user=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        if user is None or not user.is_authenticated:
            self.fields["email"].required = True

    def clean_email(self) -> str:
        email = self.cleaned_data.get("email") or ""
        if not email and self.user is not None and self.user.is_authenticated:
            email = self.user.email or ""
        return email


class SignupForm(UserCreationForm):
    """Django's UserCreationForm plus an optional email address."""

    email = forms.EmailField(required=False, label=_("Email"))

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")
