"""Persistence behind small interfaces: the embedded SQLite default, later Elasticsearch and PostgreSQL."""
