"""Catalogue data without the database: reading and validating catalogue files, the `Catalogue` arrays, splits."""
