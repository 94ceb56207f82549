"""The index templates, one JSON file per Elasticsearch resource; installed as the package data
`logspace.index_templates` (see setup.py) and read by `logspace.templates`."""
