"""REST API v1 of pipelines: datasets, exports, deliveries, model versions, promotions."""
