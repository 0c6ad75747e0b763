"""HTTP layer: flask-smorest blueprints with thin MethodViews and their marshmallow schemas."""
