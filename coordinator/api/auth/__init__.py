"""Who is calling: bearer token rules (tokens.py), the identity provider's keys (jwks.py) and
the tokens already verified (token_cache.py)."""
