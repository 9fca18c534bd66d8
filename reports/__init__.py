"""舆情日报 and 周报: what a period held, made on a schedule and on demand, kept, rendered as HTML and PDF, e-mailed."""
