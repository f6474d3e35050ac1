"""File formats only: MRC volumes, box lists, training sets, models, particles."""
