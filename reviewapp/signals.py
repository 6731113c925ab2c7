"""Signals reviewapp sends so later steps of the loop can react without reviewapp importing them.

``items_ingested(sender=Project, project, item_ids)``: sent after the transaction that created or
updated these items committed (every ingest path goes through ``services.ingest.items_ingest``).
Receivers run in the ingesting process, after the commit: a receiver's failure is logged by
Django's ``send_robust`` and never undoes the ingest. pipelines joins waiting end users' feedback.
"""

from __future__ import annotations

from django.dispatch import Signal

items_ingested = Signal()
