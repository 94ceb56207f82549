"""The benchmark harness of issues 7 and 13: `make bench` runs `python -m bench`."""
