"""The three VidThinker stages, as functions of their inputs and a model from `vidthinker.models`.

caption.py  stage 1: instruction-conditioned clip captions
retrieve.py stage 2: reasoning-based clip retrieval and instruction type
localize.py stage 3: frame localization (sampling policy, near-duplicate removal, optional VLM check)
"""
