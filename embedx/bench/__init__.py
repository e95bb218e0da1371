"""`embedx bench compare`: frozen features + light heads against fine-tuning, on real labelled data."""
