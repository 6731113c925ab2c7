"""Pages of pipelines: datasets, deliveries, model versions and promotions."""
