"""Machine learning for shots: networks, training (CopyCat), model files (.cat)."""
