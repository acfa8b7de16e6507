"""Subcategory discovery without the database: SimCLR head, projections, cascade clustering, naming, FAISS
search and the discovery feature texts; `core.steps.discover` runs them on a node of the catalogue."""
