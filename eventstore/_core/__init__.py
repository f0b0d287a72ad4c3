"""The I/O-free core: key schema, records, codecs, errors, script arguments and replies."""
