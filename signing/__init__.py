"""Keys, key storage, token encoding and strict token parsing.

Pure cryptography and formats: no database, no Flask. Everything here takes its
inputs as arguments, so a test, a CLI command and a request all run it the same way.
"""
