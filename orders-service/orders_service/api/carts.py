"""The caller's cart (admins and services name the customer with ?customer_id=)."""

from __future__ import annotations

from flask.views import MethodView

from servicekit.contracts import CartSchema
from servicekit.web import Blueprint, current_principal, int_path, log_context, requires

from ..config import BFF_CALLER
from ..services import carts
from .common import problem_responses, service_context
from .schemas import CartItemPutSchema, CustomerQuerySchema

blp = Blueprint("carts", __name__, description="One open cart per customer; check out with POST /orders")


@blp.route("/cart")
class Cart(MethodView):
    @requires("admin", "customer", "service", callers=(BFF_CALLER,))
    @blp.arguments(CustomerQuerySchema, location="query")
    @blp.response(200, CartSchema)
    @problem_responses(blp, 400, 401, 404)
    def get(self, query):
        """The cart with current prices"""
        cart = carts.get_cart(service_context(), current_principal(), query["customer_id"])
        log_context(customer_id=cart["customer_id"])
        return cart


@blp.route(f"/cart/items/{int_path('product_id')}")
class CartItem(MethodView):
    @requires("admin", "customer", "service", callers=(BFF_CALLER,))
    @blp.arguments(CustomerQuerySchema, location="query")
    @blp.arguments(CartItemPutSchema)
    @blp.response(200, CartSchema)
    @problem_responses(blp, 400, 401, 404, 503)
    def put(self, query, body, product_id):
        """Set a product's quantity in the cart (at most 100 distinct products)"""
        cart = carts.put_cart_item(
            service_context(), current_principal(), query["customer_id"], product_id, body["qty"]
        )
        log_context(customer_id=cart["customer_id"])
        return cart

    @requires("admin", "customer", "service", callers=(BFF_CALLER,))
    @blp.arguments(CustomerQuerySchema, location="query")
    @blp.response(200, CartSchema)
    @problem_responses(blp, 400, 401, 404)
    def delete(self, query, product_id):
        """Remove a product from the cart"""
        cart = carts.remove_cart_item(service_context(), current_principal(), query["customer_id"], product_id)
        log_context(customer_id=cart["customer_id"])
        return cart
