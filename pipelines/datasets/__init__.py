"""Curated datasets: versions, exports, delivery to Delta and Unity Catalog (pushes), and
assessments written back to MLflow."""
