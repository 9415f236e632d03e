"""RFC 9457 problem documents: their shape (documents.py), the mapping of errors to them
(handlers.py) and how the OpenAPI document declares them (openapi.py)."""
