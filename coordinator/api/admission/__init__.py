"""Whether and when a request gets in: the bounded request head (bounded_http.py, in the
server), the body limits and deadline (request_guard.py), and the per-user gate with the
shared crowd mark (user_gate.py, crowd.py)."""
