"""Image input, output and colour: PIL and numpy on one side, float tensors on the other."""
