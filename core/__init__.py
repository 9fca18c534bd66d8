"""Shared core: domain model, configuration, errors and logging. Imports nothing else from the project."""
