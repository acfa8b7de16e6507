"""Taxonomy database: typed models, session factory, repository functions, migrations.

Never imports streamlit.
"""
