"""`imgclf review`: decide about the audit's findings in a browser (see app.py)."""
