"""How clsp-mini is made: the trainer, the text-head tuner, their losses, caches and commands.

`searchengine` (what a query needs) never imports this package; this package imports `searchengine`,
as open_clip_train does open_clip.
"""
