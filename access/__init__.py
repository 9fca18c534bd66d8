"""Who may do what: accounts, roles, sessions, API tokens, the route guard and the audit log."""
