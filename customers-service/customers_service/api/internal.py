"""/internal: for other services' tokens only."""

from __future__ import annotations

from flask.views import MethodView

from servicekit.contracts import CustomerSchema
from servicekit.web import Blueprint, current_principal, int_path, log_context, problem_responses, requires

from ..services import customers
from .common import service_context

blp = Blueprint("internal", __name__, url_prefix="/internal", description="Service-to-service endpoints")


@blp.route(f"/customers/{int_path('customer_id')}")
class InternalCustomer(MethodView):
    @requires("service")
    @blp.response(200, CustomerSchema)
    @problem_responses(blp, 404, s404="`not_found`: unknown or soft-deleted customer")
    def get(self, customer_id):
        """Look up a live customer (used by orders-service and the BFF to validate customers)"""
        log_context(customer_id=customer_id)
        return customers.get_customer(service_context(), current_principal(), customer_id)
