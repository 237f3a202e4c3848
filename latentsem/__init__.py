"""latentsem: latent measurement and structural models from survey item data.

Data flows one way: items -> covariance (:mod:`latentsem.data`) -> search
(:mod:`latentsem.lges`, :mod:`latentsem.notears`) -> structure
(:mod:`latentsem.model`) -> fit (:mod:`latentsem.fit`) -> report / export.
"""

__version__ = "0.1.0"
