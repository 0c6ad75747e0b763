"""Products: catalogue reads for every caller, writes for admins."""

from __future__ import annotations

from flask.views import MethodView

from servicekit.contracts import ProductSchema
from servicekit.web import Blueprint, PageQuerySchema, current_principal, int_path, requires

from ..config import BFF_CALLER
from ..services import products
from .common import (
    idempotency_key_parameters,
    outcome_response,
    problem_responses,
    read_idempotency_key,
    service_context,
)
from .schemas import ProductCreateSchema, ProductPageSchema, ProductUpdateSchema, RestockSchema

blp = Blueprint("products", __name__, description="Catalogue and stock (writes: admin)")

PRODUCT_PATH = f"/products/{int_path('product_id')}"
RESTOCK_SCHEMA = RestockSchema()


@blp.route("/products")
class Products(MethodView):
    @requires("admin", "customer", "service", callers=(BFF_CALLER,))
    @blp.arguments(PageQuerySchema, location="query")
    @blp.response(200, ProductPageSchema)
    @problem_responses(blp, 400, 401)
    def get(self, query):
        """List products, by id"""
        return products.list_products(service_context(), limit=query["limit"], cursor=query["cursor"])

    @requires("admin", "service", callers=(BFF_CALLER,))
    @blp.arguments(ProductCreateSchema)
    @blp.response(201, ProductSchema)
    @problem_responses(blp, 400, 401, 403, 409, s409="`duplicate_sku`")
    def post(self, body):
        """Create a product (admin; the BFF calls for its admins with its service token)"""
        return products.create_product(service_context(), body)


@blp.route(PRODUCT_PATH)
class ProductById(MethodView):
    @requires("admin", "customer", "service", callers=(BFF_CALLER,))
    @blp.response(200, ProductSchema)
    @problem_responses(blp, 401, 404)
    def get(self, product_id):
        """Get one product"""
        return products.get_product(service_context(), product_id)

    @requires("admin", "service", callers=(BFF_CALLER,))
    @blp.arguments(ProductUpdateSchema)
    @blp.response(200, ProductSchema)
    @problem_responses(blp, 400, 401, 403, 404)
    def patch(self, body, product_id):
        """Change a product's name or price (admin); existing orders keep their prices"""
        return products.update_product(service_context(), product_id, body)


@blp.route(f"{PRODUCT_PATH}/restock")
class ProductRestock(MethodView):
    @requires("admin", "service", callers=(BFF_CALLER,))
    @blp.doc(parameters=idempotency_key_parameters(required=False))
    @blp.arguments(RESTOCK_SCHEMA)
    @blp.alt_response(200, schema=ProductSchema, success=True)
    @problem_responses(blp, 400, 401, 403, 404, 409, 422, s409="`idempotency_in_flight`")
    def post(self, body, product_id):
        """Add received stock atomically (admin); with an Idempotency-Key a retry adds it once"""
        key = read_idempotency_key(required=False)
        outcome = products.restock_product(service_context(), current_principal(), product_id, body["qty"], key)
        return outcome_response(outcome)
