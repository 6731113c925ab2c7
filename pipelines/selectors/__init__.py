"""Permission-checked getters and read queries of pipelines, one module per area."""
