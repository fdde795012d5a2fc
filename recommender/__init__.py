"""Explore recommendations: implicit-feedback ALS (docs/recommender.md).

- ``interactions``: likes, comments, saves, reel and story views → a weighted, decayed
  user x item CSR matrix, with 64-bit id maps.
- ``model``: training (CPU or GPU, chosen on ``implicit.gpu.HAS_CUDA``), the versioned
  artifact (``to_bytes``/``from_bytes``), fold-in of new interactions.
- ``scoring``: batch top-k through one array module (CuPy or NumPy), similar items,
  the trending fallback.
- ``evaluate``: the offline MovieLens evaluation (``python -m recommender.evaluate``).

Nothing is imported here, so importing the package does not load implicit.
"""
