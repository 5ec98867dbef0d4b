"""People and machines: users, roles, passwords, lockout, API tokens (Part 11 §11.10(d),
§11.300). Nobody shares a login; every write is attributable."""
