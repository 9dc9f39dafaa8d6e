"""Local Amazon Personalize Events emulator (see docs/emulator.md)."""
