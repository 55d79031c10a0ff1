"""Assessment handlers (health, security, compliance) and the registry that finds them."""
