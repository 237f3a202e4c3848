"""Metrics that compare an estimated structure with the truth: latent models (:mod:`.latent`) and DAGs (:mod:`.dag`)."""
