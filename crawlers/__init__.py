"""Collection: Scrapy spiders per channel kind, the demo-site-backed tests, crawl state, health and scheduling."""
