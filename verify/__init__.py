"""The verifier: one implementation of DESIGN's ordered checks, used by every front end."""
