"""Simulators: random generalized N factor models (:mod:`.gnfm`) and random DAGs (:mod:`.dag`)."""
