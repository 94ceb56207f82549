"""The benchmark harness of issue 7: `make bench` runs `python -m bench`."""
