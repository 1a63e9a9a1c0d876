"""Image transforms: query -> TransformSpec (pure) -> libvips pipeline, run in a process pool."""
