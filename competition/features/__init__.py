"""Features (`make features`): DSP of one clip, the record file format, worker processes, the cache
that builds and packs every clip of a split, and the memory-mapped store training reads."""
