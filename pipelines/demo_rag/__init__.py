"""The demo RAG chain: BM25 retrieval over the Lumen help centre and an extractive, cited generator.

Plain Python with relative imports only, and no Django or MLflow: the package is copied into the
logged MLflow model (``code_paths``) and imported there as ``demo_rag``, so a model version
carries its own code, its corpus snapshot and its settings (see :mod:`.pyfunc_loader`).
:mod:`pipelines.adapters.mlflow_registry` logs it; ``python manage.py log_demo_models`` registers the two
versions of ``support-assistant``.
"""
