"""The demo: Lumen's help centre, its support assistant's answers, and the project that reviews them.

``corpus`` (the articles under ``kb/``), ``items`` (the RAG outputs) and ``project`` (schema,
users) are plain data; ``loader.demo_load`` writes them through the services. Nothing here runs
from migrations: only ``python manage.py load_demo`` loads it.
"""
