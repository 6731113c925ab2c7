"""Releases: registry sync, evidence, gates, promotion, rollout and serving."""
