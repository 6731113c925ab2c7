"""Where items come from besides the REST API: MLflow traces."""
