"""Kibana's saved objects (the data view and the overview dashboard); installed as the package
data `logspace.saved_objects` (see setup.py) and read by `logspace.kibana`."""
