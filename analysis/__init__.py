"""Stateful analysis of enriched items: PII masking, keywords and places, schemes, near-duplicates, events,
spikes and risk, with their state owned by one `AnalysisState` the composition root builds."""
