"""The HTTP routes, one module per resource: each is thin (request -> command or read ->
response) and leans on auth/ for the caller, problems/ for errors."""
