"""/internal: for other services' tokens only."""

from __future__ import annotations

from flask.views import MethodView

from servicekit.contracts import CustomerSchema, LoginSchema
from servicekit.web import Blueprint, current_principal, int_path, log_context, problem_responses, requires

from ..config import BFF_CALLER, ORDERS_SERVICE_NAME
from ..services import customers, users
from .common import login_problems, service_context
from .schemas import InternalLoginInSchema

blp = Blueprint("internal", __name__, url_prefix="/internal", description="Service-to-service endpoints")


@blp.route(f"/customers/{int_path('customer_id')}")
class InternalCustomer(MethodView):
    @requires("service", callers=(BFF_CALLER, ORDERS_SERVICE_NAME))
    @blp.response(200, CustomerSchema)
    @problem_responses(blp, 404, s404="`not_found`: unknown or soft-deleted customer")
    def get(self, customer_id):
        """Look up a live customer (used by orders-service and the BFF to validate customers)"""
        log_context(customer_id=customer_id)
        return customers.get_customer(service_context(), current_principal(), customer_id)


@blp.route("/login")
class InternalLogin(MethodView):
    @requires("service", callers=(BFF_CALLER,))
    @blp.arguments(InternalLoginInSchema)
    @blp.response(200, LoginSchema)
    @login_problems(blp)
    def post(self, body):
        """The BFF's login: a user's credentials and the client address API Gateway saw

        Only the BFF's service token may name the client address the throttle counts against:
        anyone else could spread one client's attempts over made-up addresses.
        """
        result = users.login(
            service_context(),
            username=body["username"],
            password=body["password"],
            client_address=str(body["client_address"]),
        )
        log_context(user_id=result["user"]["id"], customer_id=result["user"]["customer_id"])
        return result
