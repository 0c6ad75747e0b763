"""/customers: admin management of B2B accounts; a customer user may read its own record."""

from __future__ import annotations

from flask.views import MethodView

from servicekit.contracts import CustomerSchema
from servicekit.web import Blueprint, current_principal, int_path, log_context, page_schema, problem_responses, requires

from ..config import BFF_CALLER
from ..services import customers
from .common import service_context
from .schemas import CustomerInSchema, CustomerPatchSchema, CustomerSearchQuerySchema

blp = Blueprint("customers", __name__, url_prefix="/customers", description="B2B customer accounts")

# The BFF relays its admins' (and a customer user's own read) here with its service token; no
# other service reads or writes customers through these routes (docs/auth.md).
BFF_ONLY = (BFF_CALLER,)

CustomerPageSchema = page_schema(CustomerSchema, "CustomerPage")


# What a replace (PUT) and a change (PATCH) of one customer can answer besides the shape's own.
customer_write_problems = problem_responses(
    blp,
    404,
    409,
    s404="`not_found`: unknown or deleted customer",
    s409="`duplicate_email`: a live customer has this email",
)


@blp.route("")
class CustomerCollection(MethodView):
    @requires("admin", "service", callers=BFF_ONLY)
    @blp.arguments(CustomerInSchema)
    @blp.response(201, CustomerSchema)
    @problem_responses(blp, 409, s409="`duplicate_email`: a live customer has this email")
    def post(self, body):
        """Create a customer"""
        created = customers.create_customer(service_context(), body)
        log_context(customer_id=created["id"])
        return created

    @requires("admin", "service", callers=BFF_ONLY)
    @blp.arguments(CustomerSearchQuerySchema, location="query")
    @blp.response(200, CustomerPageSchema)
    def get(self, query):
        """Search customers by name or email, a cursor page at a time"""
        return customers.search_customers(
            service_context(), search=query["search"], limit=query["limit"], cursor=query["cursor"]
        )


@blp.route(f"/{int_path('customer_id')}")
class CustomerItem(MethodView):
    @requires("admin", "customer", "service", callers=BFF_ONLY)
    @blp.response(200, CustomerSchema)
    @problem_responses(blp, 404, s404="`not_found`: unknown, deleted, or another customer's record")
    def get(self, customer_id):
        """Get a customer (admins, or the customer's own users)"""
        log_context(customer_id=customer_id)
        return customers.get_customer(service_context(), current_principal(), customer_id)

    @requires("admin", "service", callers=BFF_ONLY)
    @blp.arguments(CustomerInSchema)
    @blp.response(200, CustomerSchema)
    @customer_write_problems
    def put(self, body, customer_id):
        """Replace a customer (an omitted phone is cleared)"""
        log_context(customer_id=customer_id)
        return customers.replace_customer(service_context(), customer_id, body)

    @requires("admin", "service", callers=BFF_ONLY)
    @blp.arguments(CustomerPatchSchema)
    @blp.response(200, CustomerSchema)
    @customer_write_problems
    def patch(self, body, customer_id):
        """Change some fields of a customer"""
        log_context(customer_id=customer_id)
        return customers.update_customer(service_context(), customer_id, body)

    @requires("admin", "service", callers=BFF_ONLY)
    @blp.response(204)
    @problem_responses(blp, 404, s404="`not_found`: unknown or already deleted customer")
    def delete(self, customer_id):
        """Soft-delete a customer: gone from reads, no new orders (orders-service is told at once); its orders stay"""
        log_context(customer_id=customer_id)
        customers.delete_customer(service_context(), customer_id)
