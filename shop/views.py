"""Views of the demo shop: thin wrappers around the catalogue, the cart and checkout."""

from __future__ import annotations

import math
from typing import Any

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from shop.cart import Attribution, Cart, QuantityError, parse_quantity
from shop.checkout import CheckoutError, OrderLine, place_order
from shop.forms import CheckoutForm, SignupForm
from shop.images import product_svg
from shop.models import Category, Order, Product
from shop.newest import newest_products

PAGE_SIZE = 24
HOME_NEWEST = 8  # two rows of four on a desktop
MAX_QUERY_LENGTH = 100
ORDERS_SESSION_KEY = "orders"


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness probe: a tiny JSON answer that touches neither the database nor the cache."""
    return JsonResponse({"status": "ok"})


def _track(request: HttpRequest, event_type: str, item: Any = None, **kwargs: Any) -> None:
    """Record one behaviour event through the plugin's helper (it never raises)."""
    # Imported here so that the shop's URLconf (and /healthz) never depends on the tracking module.
    from behavior.tracking import record_event

    record_event(request, event_type, item, **kwargs)


def _active_products():
    return Product.objects.filter(is_active=True).select_related("category")


def _page(request: HttpRequest, queryset):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The front page: recommendation blocks and the newest products."""
    return render(request, "shop/home.html", {"newest": newest_products(HOME_NEWEST)})


@require_GET
def product_image(request: HttpRequest, sku: str) -> HttpResponse:
    """The product's picture, drawn from its category and name (an SVG, cached a day by browsers)."""
    product = get_object_or_404(Product.objects.select_related("category"), sku=sku)
    response = HttpResponse(
        product_svg(name=product.name, category=product.category.name), content_type="image/svg+xml"
    )
    response["Cache-Control"] = "public, max-age=86400"
    return response


@require_GET
def category(request: HttpRequest, slug: str) -> HttpResponse:
    """One category's active products, paginated and sorted."""
    current = get_object_or_404(Category, slug=slug)
    ordering = {"price": "price", "-price": "-price", "name": "name"}.get(request.GET.get("sort", ""), "name")
    products = _active_products().filter(category=current).order_by(ordering, "id")
    return render(
        request,
        "shop/category.html",
        {"category": current, "page": _page(request, products), "sort": request.GET.get("sort", "")},
    )


@require_GET
def search(request: HttpRequest) -> HttpResponse:
    """Search names and descriptions; every non-empty search is recorded with its query."""
    query = " ".join(request.GET.get("q", "").split())[:MAX_QUERY_LENGTH]
    page = None
    if query:
        products = _active_products().filter(Q(name__icontains=query) | Q(description__icontains=query))
        page = _page(request, products.order_by("name", "id"))
        if request.GET.get("page") in (None, "", "1"):
            _track(request, "search", None, context={"query": query, "results": page.paginator.count})
    return render(request, "shop/search.html", {"query": query, "page": page})


@require_GET
def product(request: HttpRequest, sku: str) -> HttpResponse:
    """A product page; its view event carries the recommendation that led here, if any."""
    item = get_object_or_404(_active_products(), sku=sku)
    attribution = Attribution.from_params(request.GET)
    _track(request, "view", item, **attribution.as_event_kwargs())
    cart = Cart(request.session)
    return render(
        request,
        "shop/product.html",
        {"product": item, "attribution": attribution, "in_cart": cart.quantity_of(item.sku)},
    )


def _cart_page(request: HttpRequest, cart: Cart, *, status: int = 200, form=None) -> HttpResponse:
    lines = cart.lines()
    total = sum((line.line_total for line in lines), start=0)
    return render(
        request,
        "shop/cart.html",
        {"lines": lines, "total": total, "form": form or CheckoutForm(user=request.user)},
        status=status,
    )


@require_GET
def cart_view(request: HttpRequest) -> HttpResponse:
    """The cart with its lines and total."""
    return _cart_page(request, Cart(request.session))


@require_POST
def cart_add(request: HttpRequest) -> HttpResponse:
    """Add a product to the cart (POST sku, quantity and the attribution rec/pos/pl)."""
    cart = Cart(request.session)
    sku = request.POST.get("sku", "").strip()
    item = _active_products().filter(sku=sku).first() if sku else None
    if item is None:
        messages.error(request, gettext("sku: this product does not exist or is no longer sold."))
        return _cart_page(request, cart, status=400)
    try:
        quantity = parse_quantity(request.POST.get("quantity", "1"))
    except QuantityError as error:
        messages.error(request, str(error))
        return _cart_page(request, cart, status=400)
    if item.stock < cart.quantity_of(sku) + quantity:
        messages.error(
            request,
            gettext("Only %(stock)d of %(name)s in stock.") % {"stock": item.stock, "name": item.name}
            if item.stock
            else gettext("%(name)s is out of stock.") % {"name": item.name},
        )
        return _cart_page(request, cart, status=409)
    attribution = Attribution.from_params(request.POST)
    cart.add(sku, quantity, attribution)
    _track(
        request,
        "add_to_cart",
        item,
        quantity=quantity,
        value=item.price * quantity,
        **cart.attribution_of(sku).as_event_kwargs(),
    )
    messages.success(
        request,
        gettext("Added %(quantity)d × %(name)s to your cart.") % {"quantity": quantity, "name": item.name},
    )
    return redirect("shop:cart")


@require_POST
def cart_remove(request: HttpRequest) -> HttpResponse:
    """Remove a product from the cart entirely."""
    cart = Cart(request.session)
    sku = request.POST.get("sku", "").strip()
    attribution = cart.attribution_of(sku)
    removed = cart.remove(sku)
    if removed:
        item = Product.objects.filter(sku=sku).first()
        if item is not None:
            _track(request, "remove_from_cart", item, quantity=removed, **attribution.as_event_kwargs())
            messages.info(request, gettext("Removed %(name)s from your cart.") % {"name": item.name})
    return redirect("shop:cart")


@require_http_methods(["GET", "POST"])
def checkout(request: HttpRequest) -> HttpResponse:
    """Place the order: creates it atomically, empties the cart, records one purchase per line."""
    cart = Cart(request.session)
    lines = cart.lines()
    if request.method == "GET":
        if not lines:
            messages.info(request, gettext("Your cart is empty."))
            return redirect("shop:cart")
        return render(
            request,
            "shop/checkout.html",
            {
                "lines": lines,
                "total": sum((line.line_total for line in lines), start=0),
                "form": CheckoutForm(user=request.user),
            },
        )
    form = CheckoutForm(request.POST, user=request.user)
    if not form.is_valid():
        return _cart_page(request, cart, status=400, form=form)
    try:
        order = place_order(
            [OrderLine(sku, qty) for sku, qty in cart.quantities.items()],
            user=request.user,
            visitor_id=getattr(request, "visitor_id", ""),
            email=form.cleaned_data["email"],
        )
    except CheckoutError as error:
        messages.error(request, str(error))
        return _cart_page(request, cart, status=409 if cart.quantities else 400, form=form)
    for line in order.items.select_related("product"):
        _track(
            request,
            "purchase",
            line.product,
            value=line.line_total,
            quantity=line.quantity,
            context={"order": order.pk},
            **cart.attribution_of(line.product.sku).as_event_kwargs(),
        )
    cart.clear()
    request.session[ORDERS_SESSION_KEY] = [*request.session.get(ORDERS_SESSION_KEY, [])[-19:], order.pk]
    return redirect("shop:order_done", pk=order.pk)


@require_GET
def order_done(request: HttpRequest, pk: int) -> HttpResponse:
    """The thank-you page; only the buyer (their account or their session) may see it."""
    order = get_object_or_404(Order.objects.prefetch_related("items__product"), pk=pk)
    own = pk in request.session.get(ORDERS_SESSION_KEY, []) or (
        request.user.is_authenticated and order.user_id == request.user.pk
    )
    if not own:
        raise Http404(gettext("No such order."))
    return render(request, "shop/order_done.html", {"order": order})


class LoginView(auth_views.LoginView):
    """Django's login form, its attempts throttled per client address (scope ``login``).

    A refused attempt is answered 429 with ``Retry-After`` before any password is checked;
    the address is the one ``behavior.client_address`` trusts (``TRUSTED_PROXY_COUNT``).
    """

    template_name = "shop/login.html"
    throttle_scope = "login"

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        from behavior.throttling import ResilientScopedRateThrottle

        throttle = ResilientScopedRateThrottle()
        if throttle.allow_request(request, self):
            return super().post(request, *args, **kwargs)
        wait = max(1, math.ceil(throttle.wait() or 60))
        messages.error(
            request,
            gettext("Too many login attempts from your network; try again in %(wait)d seconds.")
            % {"wait": wait},
        )
        response = self.render_to_response(
            self.get_context_data(form=self.get_form_class()(request)), status=429
        )
        response["Retry-After"] = str(wait)
        return response


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Create an account and sign in."""
    if request.method == "POST":
        form = SignupForm(request.POST)
        if form.is_valid():
            user = form.save()
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, gettext("Welcome, %(name)s!") % {"name": user.username})
            return redirect("shop:home")
        return render(request, "shop/signup.html", {"form": form}, status=400)
    return render(request, "shop/signup.html", {"form": SignupForm()})
