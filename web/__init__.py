"""HTTP plumbing shared by the packages' blueprints (Flask lives here and in app.py)."""
