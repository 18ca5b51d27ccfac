"""What the runtime reads out of DragonBall.bin: sections, the image archive (docs/bin-format.md)."""
