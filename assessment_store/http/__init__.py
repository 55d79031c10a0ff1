"""The HTTP API (SPEC section 6): FastAPI app factory, routes, auth, error mapping."""
