"""/auth/login and /users."""

from __future__ import annotations

from flask import request
from flask.views import MethodView

from servicekit.contracts import LoginSchema
from servicekit.web import Blueprint, log_context, problem_responses, requires

from ..services import users
from .common import login_problems, service_context
from .schemas import LoginInSchema, UserInSchema, UserSchema

blp = Blueprint("users", __name__, description="Login users and authentication")


@blp.route("/auth/login")
class Login(MethodView):
    @blp.arguments(LoginInSchema)
    @blp.response(200, LoginSchema)
    @login_problems(blp)
    def post(self, body):
        """Exchange username and password for a user token (throttled per username and per address)"""
        # Direct callers are throttled by the address of the connection; the BFF, which has the
        # client's own, passes it to POST /internal/login instead (docs/auth.md).
        result = users.login(
            service_context(),
            username=body["username"],
            password=body["password"],
            client_address=request.remote_addr or "unknown",
        )
        log_context(user_id=result["user"]["id"], customer_id=result["user"]["customer_id"])
        return result


@blp.route("/users")
class UserCollection(MethodView):
    # Admins only: no service relays user creation (docs/auth.md), so no service token may create
    # a login, an admin's included.
    @requires("admin")
    @blp.arguments(UserInSchema)
    @blp.response(201, UserSchema)
    @problem_responses(
        blp,
        400,
        404,
        409,
        s400="`validation_error`: invalid fields, or `customer_id` given for an admin / missing for a customer user",
        s404="`not_found`: `customer_id` names no live customer",
        s409="`duplicate_username`: the username is taken",
    )
    def post(self, body):
        """Create a login user (an admin, or a customer user bound to a customer)"""
        created = users.create_user(service_context(), body)
        log_context(user_id=created["id"], customer_id=created["customer_id"])
        return created
