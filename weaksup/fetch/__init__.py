"""Step zero: fetch web videos from a URL list into files (``weaksup fetch``)."""
