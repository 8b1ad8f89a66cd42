"""Readers of corpora that come as datasets rather than manifests, for `searchengine.manifest`.

Each turns its format into a table of manifest rows and hands it to `manifest.table_source`, so a
row means the same whichever format it came in:

* `hf`: Hugging Face datasets saved with `save_to_disk` (arrow files), parquet or arrow files with
  an audio column (bytes or a path), as the Hub and `Dataset.to_parquet` write them.
* `lhotse`: lhotse recording, supervision and cut manifests (`.jsonl` or `.jsonl.gz`).
* `webdataset`: tar shards whose samples hold an audio member and `.json` / `.txt` beside it.
* `extract`: writes audio stored inside a source out as files, for the indexer.

They read with pyarrow, gzip, json and tarfile only: the formats are simple, and the libraries that
write them (datasets, lhotse, webdataset) are heavy and not needed at run time.
"""
