"""Certificate documents: the PDF a holder carries, its QR code, and reading PDFs back.

Depends on the registry for what a certificate says; knows nothing of Flask.
"""
