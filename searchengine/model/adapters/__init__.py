"""Encoders over models we did not train: the released CLSP checkpoint and LAION CLAP (baseline)."""
