"""Pages of the demo shop (included by shop/urls.py)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from shop import views

app_name = "shop"
urlpatterns = [
    path("", views.home, name="home"),
    path("c/<slug:slug>/", views.category, name="category"),
    path("p/<str:sku>/", views.product, name="product"),
    path("p/<str:sku>/image.svg", views.product_image, name="product_image"),
    path("search/", views.search, name="search"),
    path("cart/", views.cart_view, name="cart"),
    path("cart/add/", views.cart_add, name="cart_add"),
    path("cart/remove/", views.cart_remove, name="cart_remove"),
    path("checkout/", views.checkout, name="checkout"),
    path("orders/<int:pk>/", views.order_done, name="order_done"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", views.signup, name="signup"),
]
