"""The algorithm: VGG19 features, losses, optimisers and the optimisation loop.

Torch only: nothing here reads files, prints or parses arguments. ``core.config`` does not
import torch at all, so the CLI can resolve options without paying for it.
"""
