"""The thin command-line front end (``tomoseg``)."""
