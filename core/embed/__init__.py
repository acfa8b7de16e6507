"""Product embeddings: the encoder registry, the on-disk vector cache, catalogue features, TF-IDF and the
title-photo aligner. Pure: takes a `core.data.Catalogue` or arrays, never opens the database."""
