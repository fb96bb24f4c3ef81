"""Celery tasks of the recommender: thin wrappers over services, with permanent names.

Shared file: each concern appends its own section below.
"""
