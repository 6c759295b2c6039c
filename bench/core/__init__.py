"""The ground floor every other layer stands on: errors, emotions, paths, media, manifests and
splits, weights, ffmpeg and face detection. Nothing here imports from outside ``bench.core``."""
