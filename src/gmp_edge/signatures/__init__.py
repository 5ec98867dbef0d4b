"""Electronic signatures (21 CFR 11.50/11.70): manifests bound to the signed content's hash."""
