"""Side-by-side benchmark of apiclub against the tutorial's stack (issue #5); `python -m bench`."""
