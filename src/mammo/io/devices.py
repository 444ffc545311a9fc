"""The device names every command takes (`--device`), torch-free so that the CLI offers them without loading torch."""

DEVICES = ("auto", "cpu", "cuda")
DEVICE_HELP = "where to run: auto (CUDA when present), cpu or cuda"
