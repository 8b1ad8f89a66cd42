"""Encoders over models we did not train: the released CLSP checkpoint and LAION CLAP (baseline).

Each is an `Encoder` subclass constructed as `(directory, device, name=...)` and registered by one row
of `searchengine.model.registry.ADAPTERS`, which imports its module only when such a model is loaded."""
