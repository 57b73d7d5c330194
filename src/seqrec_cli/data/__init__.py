"""Raw readers, filtering, id maps, splits, the prepared-dataset store and batching."""
