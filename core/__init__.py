"""Taxonomy Curator core: ingest, embeddings, classification, discovery. Never imports streamlit."""
