"""In-process tests that need the stack's libraries (FastAPI, pydantic, jwt...), no service."""
