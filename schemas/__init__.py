"""Table schemas, one JSON file per table (see weaksup.tables for loading and validation)."""
