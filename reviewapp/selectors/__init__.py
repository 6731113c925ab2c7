"""Reads, one module per entity; import from the entity's module (``reviewapp.selectors.projects``).

Every entity a user may reach is fetched through one permission-checked getter (``*_get_for_user``).
"""
