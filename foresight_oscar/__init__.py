"""Foresight for django-oscar: Oscar's own signals become Foresight events, Oscar's users its customers and
Oscar's products its products (docs/oscar.md)."""
