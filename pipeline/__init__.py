"""Clean and deduplicate scraped news text into a documented Parquet corpus."""

__version__ = "0.1.0"
