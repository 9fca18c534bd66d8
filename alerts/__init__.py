"""Alerts: rules turn stored items into labelled alerts; routing, muting, grouping and durable delivery follow."""
