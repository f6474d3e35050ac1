"""The network of Chen et al. 2017, its FFT convolution, and inference engines."""
