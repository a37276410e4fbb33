"""The algorithm: VGG19 features, losses, optimisers and the optimisation loop.

Torch only: no PIL, no printing, no argument parsing; progress leaves through a callback and
images arrive as tensors. The few files it reads are those a run is set up from: the VGG19
weights (``vgg``), a configuration file (``config``) and the free memory (``memory``, from
``/proc`` and cgroups). ``config``, ``registry`` and ``layers`` do not import torch at all, so
the CLI can resolve options, and every floor can name them, without paying for it.
"""
