"""/internal: for other services' tokens only."""

from __future__ import annotations

from flask.views import MethodView

from servicekit.contracts import CustomerSchema
from servicekit.db import read
from servicekit.web import Blueprint, int_path, log_context, problem_responses, requires

from ..runtime import runtime
from ..services import customers

blp = Blueprint("internal", __name__, url_prefix="/internal", description="Service-to-service endpoints")


@blp.route(f"/customers/{int_path('customer_id')}")
class InternalCustomer(MethodView):
    @requires("service")
    @blp.response(200, CustomerSchema)
    @problem_responses(blp, 404, s404="`not_found`: unknown or soft-deleted customer")
    def get(self, customer_id):
        """Look up a live customer (used by orders-service and the BFF to validate customers)"""
        log_context(customer_id=customer_id)
        return read(runtime().session_factory, lambda session: customers.get_customer(session, customer_id))
